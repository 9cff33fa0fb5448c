// Pieces every resource implementation here shares (provider/plugin.ts serves them): reading the admin
// credentials in `configure`, and a diff that says which changed properties update in place and which replace.
import * as pulumi from "@pulumi/pulumi";
import { CA_CERTIFICATE_KEY, parseCaCertificate } from "../lib/config/caCertificate";
import { ADOPT_KEY, claimRefusal, ClaimArgs, isOwnerId, readAdopt, takenOverRefusal } from "../lib/minio/ownership";
import { AdminCredentials, adminCredentialsFrom, MinioTarget, providerError } from "./minioClients";

/** Properties every MinIO-backed resource carries: where the server is. */
export interface TargetProps {
  endpoint: string;
  region: string;
}

/** A provider object that keeps what `configure` read from the stack config: admin credentials and the CA. */
export interface ConfiguredProvider {
  admin?: AdminCredentials;
  /** nix-cache:caCertificate, normalized; undefined when unset. */
  ca?: string;
  /** nix-cache:adopt: take over a bucket, user or policy this stack did not make (lib/minio/ownership.ts). */
  adopt?: ReturnType<typeof readAdopt>;
}

/**
 * The owner marker a resource carries (lib/minio/ownership.ts): this stack's id and name as inputs; after a read,
 * the id (and the name, when the marker says) of whoever the live marker names.
 */
export interface OwnerMark {
  id: string;
  project?: string;
  stack?: string;
  /** "project/stack" of another owner, as its marker says (read back only). */
  label?: string;
}

/**
 * The `configure` method every MinIO provider uses. Credentials and the CA come from the stack config at run
 * time: they are never a resource input, so they never enter the state, and a new CA changes no resource.
 */
export async function configureAdmin(this: ConfiguredProvider, req: pulumi.dynamic.ConfigureRequest): Promise<void> {
  this.admin = adminCredentialsFrom(req.config);
  this.adopt = readAdopt(req.config.get(ADOPT_KEY));
  const ca = req.config.get(CA_CERTIFICATE_KEY);
  if (ca !== undefined && ca.trim() !== "") {
    const parsed = parseCaCertificate(ca);
    // The program validated it already; this guards a refresh that runs on a config the program never saw.
    if (!parsed.ok) throw providerError(parsed.problem);
    this.ca = parsed.pem;
  }
}

/** The credentials `configure` stored, or a clear error if Pulumi never called it. */
export function adminOf(provider: ConfiguredProvider): AdminCredentials {
  if (!provider.admin) throw new Error("the nix-cache provider was not configured with the MinIO admin credentials");
  return provider.admin;
}

/** Where a resource lives, and the CA its endpoint's certificate is checked against. */
export function targetOf(props: TargetProps, provider: ConfiguredProvider): MinioTarget {
  return { endpoint: props.endpoint, region: props.region, ca: provider.ca };
}

/**
 * The placeholder the engine passes for an input not known yet (during a preview, an output of a resource
 * that is still to be created or updated), as the provider's inputs carry it.
 */
export const UNKNOWN_INPUT = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

const holdsUnknown = (v: unknown) => v === UNKNOWN_INPUT || (typeof v === "object" && v !== null && JSON.stringify(v).includes(UNKNOWN_INPUT));

/**
 * Compares old outputs with new inputs: a change of a `replaceOn` key replaces, any other listed key updates.
 * An input not known yet (preview only) counts as changed, and is never handed to a `canonical` function.
 */
export function diffProps<T extends object>(
  olds: T,
  news: T,
  replaceOn: (keyof T & string)[],
  updateOn: (keyof T & string)[],
  canonical: Partial<Record<keyof T & string, (v: unknown) => string>> = {},
): pulumi.dynamic.DiffResult {
  const same = (k: keyof T & string) => {
    if (holdsUnknown(news[k])) return false;
    const norm = canonical[k] ?? ((v: unknown) => JSON.stringify(v ?? null));
    return norm(olds[k]) === norm(news[k]);
  };
  const replaces = replaceOn.filter((k) => !same(k));
  const updates = updateOn.filter((k) => !same(k));
  return { changes: replaces.length + updates.length > 0, replaces, deleteBeforeReplace: false };
}

/** This stack's owner id from a resource's owner input, or undefined while unknown (a first preview) or unset. */
export const ownerIdOf = (owner: OwnerMark | undefined): string | undefined => (isOwnerId(owner?.id) ? owner?.id : undefined);

/** The adopt opt-in, or a thrown error naming the bad value. */
function adoptOf(provider: ConfiguredProvider): boolean {
  if (provider.adopt?.problem) throw Object.assign(providerError(provider.adopt.problem), { ownership: true });
  return provider.adopt?.allowed ?? false;
}

/** Throws the refusal when this stack may not write the thing (lib/minio/ownership.ts claimRefusal). */
export function enforceClaim(provider: ConfiguredProvider, args: Omit<ClaimArgs, "adopt">): void {
  const refusal = claimRefusal({ ...args, adopt: adoptOf(provider) });
  if (refusal) throw Object.assign(providerError(refusal), { ownership: true });
}

/** Throws when a thing of this stack's state now carries another stack's marker (lib/minio/ownership.ts takenOverRefusal). */
export function enforceNotTakenOver(provider: ConfiguredProvider, kind: ClaimArgs["kind"], name: string, live: OwnerMark | undefined, us: string | undefined): void {
  const refusal = takenOverRefusal(kind, name, live && isOwnerId(live.id) ? { id: live.id, label: live.label } : undefined, us, adoptOf(provider));
  if (refusal) throw Object.assign(providerError(refusal), { ownership: true });
}

/**
 * Runs an ownership look-up for `check` (the preview): a refusal is thrown, anything else (MinIO unreachable,
 * wrong credentials) is left for the create or update, which reports it as every other call does.
 */
export async function checkClaim(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if ((err as { ownership?: boolean }).ownership) throw err;
  }
}

/** A value known in this step (not a preview placeholder, not empty). */
export const known = (v: unknown): boolean => typeof v === "string" && v !== "" && v !== UNKNOWN_INPUT;
