// Pieces every dynamic provider here shares: reading the admin credentials in `configure`, and a diff that
// says which changed properties update in place and which replace.
import * as pulumi from "@pulumi/pulumi";
import { AdminCredentials, adminCredentialsFrom, MinioTarget } from "./minioClients";

/** Properties every MinIO-backed resource carries: where the server is. */
export interface TargetProps {
  endpoint: string;
  region: string;
}

/** A provider object that keeps the admin credentials `configure` read from the stack config. */
export interface ConfiguredProvider {
  admin?: AdminCredentials;
}

/**
 * The `configure` method every MinIO provider uses. Credentials come from the stack config at run time, so
 * they are never a resource input and never enter the state.
 */
export async function configureAdmin(this: ConfiguredProvider, req: pulumi.dynamic.ConfigureRequest): Promise<void> {
  this.admin = adminCredentialsFrom(req.config);
}

/** The credentials `configure` stored, or a clear error if Pulumi never called it. */
export function adminOf(provider: ConfiguredProvider): AdminCredentials {
  if (!provider.admin) throw new Error("the nix-cache provider was not configured with the MinIO admin credentials");
  return provider.admin;
}

export function targetOf(props: TargetProps): MinioTarget {
  return { endpoint: props.endpoint, region: props.region };
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
