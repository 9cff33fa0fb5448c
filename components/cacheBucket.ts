import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/config/settings";
import { CACHE_INFO_CONTENT_TYPE, CACHE_INFO_KEY, renderCacheInfo } from "../lib/config/cacheInfo";
import { StackOwner } from "../lib/minio/ownership";
import { MinioBucket, MinioObject } from "../resources/s3";

export interface CacheBucketArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** Bucket name. Default "nix-cache". */
  bucket?: pulumi.Input<string>;
  /** `StoreDir` in nix-cache-info. Default "/nix/store". */
  storeDir?: pulumi.Input<string>;
  /** `WantMassQuery` in nix-cache-info. Default true. */
  wantMassQuery?: pulumi.Input<boolean>;
  /** `Priority` in nix-cache-info (lower is preferred; cache.nixos.org is 40). Default 40. */
  priority?: pulumi.Input<number>;
  /** Delete cached objects with the bucket on destroy. Default false: destroy refuses a non-empty bucket. */
  forceDestroy?: pulumi.Input<boolean>;
  /** The owning stack, written as the bucket's tags (lib/minio/ownership.ts). Default: unmarked. */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/** The cache bucket and its `nix-cache-info` object, which makes Nix accept the bucket as a binary cache. */
export class CacheBucket extends pulumi.ComponentResource {
  /** The bucket name. */
  readonly bucket: pulumi.Output<string>;
  /** The nix-cache-info text as uploaded. */
  readonly cacheInfo: pulumi.Output<string>;

  constructor(name: string, args: CacheBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:CacheBucket", name, {}, opts);
    const region = args.region ?? DEFAULTS.region;
    const bucket = new MinioBucket(
      `${name}-bucket`,
      {
        endpoint: args.endpoint,
        region,
        bucket: args.bucket ?? DEFAULTS.bucket,
        forceDestroy: args.forceDestroy ?? DEFAULTS.forceDestroy,
        owner: args.owner,
      },
      { parent: this },
    );
    this.cacheInfo = pulumi
      .all([args.storeDir ?? DEFAULTS.storeDir, args.wantMassQuery ?? DEFAULTS.wantMassQuery, args.priority ?? DEFAULTS.priority])
      .apply(([storeDir, wantMassQuery, priority]) => renderCacheInfo({ storeDir, wantMassQuery, priority }));
    const info = new MinioObject(
      `${name}-nix-cache-info`,
      {
        endpoint: args.endpoint,
        region,
        bucket: bucket.bucket,
        key: CACHE_INFO_KEY,
        content: this.cacheInfo,
        contentType: CACHE_INFO_CONTENT_TYPE,
      },
      { parent: this },
    );
    // Dependents wait for nix-cache-info too: the cache is usable only once it exists. Its URN (known in a
    // preview, unlike an id still to be made) carries the dependency without hiding the bucket name.
    this.bucket = pulumi.all([bucket.bucket, info.urn]).apply(([b]) => b);
    this.registerOutputs({ bucket: this.bucket, cacheInfo: this.cacheInfo });
  }
}
