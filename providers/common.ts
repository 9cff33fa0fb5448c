// Pieces every dynamic provider here shares: reading the admin credentials in `configure`, and a diff that
// says which changed properties update in place and which replace.
import * as pulumi from "@pulumi/pulumi";
import { CA_CERTIFICATE_KEY, parseCaCertificate } from "../lib/caCertificate";
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
}

/**
 * The `configure` method every MinIO provider uses. Credentials and the CA come from the stack config at run
 * time: they are never a resource input, so they never enter the state, and a new CA changes no resource.
 */
export async function configureAdmin(this: ConfiguredProvider, req: pulumi.dynamic.ConfigureRequest): Promise<void> {
  this.admin = adminCredentialsFrom(req.config);
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
 * that is still to be created or updated). Kept as text: this code is serialized into the provider.
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
