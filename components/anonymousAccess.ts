import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/config/settings";
import { markPolicy, StackOwner } from "../lib/minio/ownership";
import { anonymousPolicy } from "../lib/minio/policies";
import { MinioBucketPolicy } from "../providers/s3";

export interface AnonymousAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket. */
  bucket: pulumi.Input<string>;
  /** Also let anonymous clients list the bucket. Default false (Nix never needs it). */
  allowList?: pulumi.Input<boolean>;
  /** The owning stack, marked in the policy's Sids (lib/minio/ownership.ts). Default: unmarked. */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/** Anonymous download: anyone may read the cache's objects, and nothing else. */
export class AnonymousAccess extends pulumi.ComponentResource {
  /** The bucket policy document. */
  readonly policy: pulumi.Output<string>;

  constructor(name: string, args: AnonymousAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:AnonymousAccess", name, {}, opts);
    this.policy = pulumi
      .all([args.bucket, args.allowList ?? DEFAULTS.anonymousList, args.owner])
      .apply(([bucket, allowList, owner]) => JSON.stringify(markPolicy(anonymousPolicy(bucket, allowList), owner, ["Objects", "List"])));
    new MinioBucketPolicy(
      `${name}-policy`,
      { endpoint: args.endpoint, region: args.region ?? DEFAULTS.region, bucket: args.bucket, policy: this.policy, owner: args.owner },
      { parent: this },
    );
    this.registerOutputs({ policy: this.policy });
  }
}
