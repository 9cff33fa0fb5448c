import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/settings";
import { expiryRule } from "../lib/lifecycle";
import { expiryRuleId, StackOwner } from "../lib/ownership";
import { MinioLifecycle } from "../providers/s3";

export interface CacheExpiryArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket. */
  bucket: pulumi.Input<string>;
  /** Days after which cached objects expire. Default 7. */
  expireDays?: pulumi.Input<number>;
  /** The nix-cache-info text: objects no larger than it never expire, so it is always kept. */
  cacheInfo: pulumi.Input<string>;
  /** The owning stack, marked in the rule's ID (lib/ownership.ts). Default: unmarked. */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/** The lifecycle rule that expires old cache objects and never `nix-cache-info`. */
export class CacheExpiry extends pulumi.ComponentResource {
  /** Objects of at most this many bytes are kept forever (nix-cache-info's size). */
  readonly keepUpToBytes: pulumi.Output<number>;

  constructor(name: string, args: CacheExpiryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:CacheExpiry", name, {}, opts);
    const rule = pulumi
      .all([args.expireDays ?? DEFAULTS.expireDays, args.cacheInfo, args.owner])
      .apply(([days, info, owner]) => ({ ...expiryRule(days, info), id: expiryRuleId(owner?.id) }));
    new MinioLifecycle(
      `${name}-lifecycle`,
      { endpoint: args.endpoint, region: args.region ?? DEFAULTS.region, bucket: args.bucket, rules: rule.apply((r) => [r]), owner: args.owner },
      { parent: this },
    );
    this.keepUpToBytes = rule.keepUpToBytes;
    this.registerOutputs({ keepUpToBytes: this.keepUpToBytes });
  }
}
