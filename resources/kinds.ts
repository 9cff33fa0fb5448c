// The resource types the nix-cache provider plugin serves: one list, read by the program side (resources/*.ts)
// and by the plugin (provider/plugin.ts). Pure: no Pulumi runtime.

/** Package name of the provider plugin (`pulumi-resource-nix-cache`) and the first part of every type token. */
export const PACKAGE = "nix-cache";

export const RESOURCE_KINDS = [
  "MinioBucket",
  "MinioObject",
  "MinioBucketPolicy",
  "MinioLifecycle",
  "MinioDestroyGuard",
  "MinioUser",
  "MinioPolicy",
  "MinioPolicyAttachment",
  "NixCacheOwner",
  "NixSigningKeypair",
  "RandomPassword",
  "NixCacheTakeover",
] as const;

export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** The type token the plugin serves a kind under, e.g. `nix-cache:index:MinioBucket`. */
export const tokenOf = (kind: ResourceKind): string => `${PACKAGE}:index:${kind}`;

/**
 * The type the same resource had as a dynamic resource (before the plugin): kept as an alias, so a stack deployed
 * then keeps every resource (same name and parent; only the type and the provider change, never a replacement).
 */
export const dynamicTokenOf = (kind: ResourceKind): string => `pulumi-nodejs:dynamic:${kind}`;

/** The kind a type token names (either form), or undefined for a type the plugin does not serve. */
export function kindOfToken(token: string): ResourceKind | undefined {
  const m = /^(?:nix-cache:index|pulumi-nodejs:dynamic):(\w+)$/.exec(token);
  return m && (RESOURCE_KINDS as readonly string[]).includes(m[1]) ? (m[1] as ResourceKind) : undefined;
}

/** The type token inside a URN (`urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME`): the last `$` part. */
export function typeOfUrn(urn: string): string {
  const parts = urn.split("::");
  if (parts.length < 4) throw new Error(`not a resource URN: ${urn}`);
  const chain = parts[2].split("$");
  return chain[chain.length - 1];
}
