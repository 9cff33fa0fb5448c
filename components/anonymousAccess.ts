import * as pulumi from "@pulumi/pulumi";
import { AccessMode, DEFAULTS } from "../lib/config/settings";
import { markPolicy, StackOwner } from "../lib/minio/ownership";
import { anonymousPolicy, noAnonymousPolicy } from "../lib/minio/policies";
import { MinioBucketPolicy } from "../resources/s3";

export interface AnonymousAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket. */
  bucket: pulumi.Input<string>;
  /** "public": anonymous download; "private": no bucket policy at all (anonymous requests refused). Default "public". */
  access?: pulumi.Input<AccessMode>;
  /** Also let anonymous clients list the bucket (access=public). Default false (Nix never needs it). */
  allowList?: pulumi.Input<boolean>;
  /** The owning stack, marked in the policy's Sids (lib/minio/ownership.ts). Default: unmarked. */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/**
 * The bucket policy: anonymous download (anyone may read the cache's objects, and nothing else), or for a
 * private cache none at all, kept so: a policy added by hand is drift that `up --refresh` removes.
 */
export class AnonymousAccess extends pulumi.ComponentResource {
  /** The bucket policy document. */
  readonly policy: pulumi.Output<string>;

  constructor(name: string, args: AnonymousAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:AnonymousAccess", name, {}, opts);
    this.policy = pulumi
      .all([args.bucket, args.allowList ?? DEFAULTS.anonymousList, args.access ?? DEFAULTS.access, args.owner])
      .apply(([bucket, allowList, access, owner]) =>
        JSON.stringify(access === "private" ? noAnonymousPolicy() : markPolicy(anonymousPolicy(bucket, allowList), owner, ["Objects", "List"])),
      );
    new MinioBucketPolicy(
      `${name}-policy`,
      { endpoint: args.endpoint, region: args.region ?? DEFAULTS.region, bucket: args.bucket, policy: this.policy, owner: args.owner },
      { parent: this },
    );
    this.registerOutputs({ policy: this.policy });
  }
}
