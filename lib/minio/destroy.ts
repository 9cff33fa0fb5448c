// `pulumi destroy` is all or nothing. Without nix-cache:forceDestroy a bucket that holds cached objects is kept,
// and then so must be everything that makes it a working cache: deleting the anonymous-read policy, the users or
// nix-cache-info while the objects stay would stop every host and the builder and keep the data. So the destroy
// guard, a resource every other one is deleted after, refuses first (providers/s3.ts MinioDestroyGuard), and
// nothing at all is deleted. Pure; kept free of classes and Maps (serialized into the provider).
import { CACHE_INFO_KEY } from "../config/cacheInfo";

/** The objects that make the bucket "hold a cache": all but nix-cache-info, which the stack itself wrote. */
export const cachedKeys = (keys: readonly string[]): string[] => keys.filter((k) => k !== CACHE_INFO_KEY);

/**
 * Why `pulumi destroy` must not go ahead, or undefined when it may: the bucket still holds cached objects and
 * forceDestroy is off. `keys` are some of its keys (enough to tell, and to name a few), `capped` when there are more.
 */
export function destroyRefusal(bucket: string, keys: readonly string[], capped: boolean, forceDestroy: boolean): string | undefined {
  const cached = cachedKeys(keys);
  if (forceDestroy || cached.length === 0) return undefined;
  const count = `${cached.length}${capped ? " or more" : ""}`;
  return (
    `bucket '${bucket}' still holds ${count} cached objects (e.g. ${cached.slice(0, 3).join(", ")}) and nix-cache:forceDestroy is false; ` +
    `nothing was deleted. Deleting the rest (the anonymous-read policy, the users, nix-cache-info, the signing key) while the objects stay ` +
    `would stop every host and the builder and keep the data. To delete everything, cached objects included: ` +
    `pulumi config set nix-cache:forceDestroy true && pulumi up && pulumi destroy. To keep the cache working as it is and stop ` +
    `managing it with this stack, back up the signing key first (pulumi stack output --show-secrets secretKey), then: pulumi stack rm --force.`
  );
}
