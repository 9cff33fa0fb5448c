import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS, Retention } from "../lib/config/settings";
import { ExpiryRule, expiryRule, retentionRules } from "../lib/minio/lifecycle";
import { expiryRuleId, StackOwner } from "../lib/minio/ownership";
import { MinioLifecycle } from "../resources/s3";

export interface CacheExpiryArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket. */
  bucket: pulumi.Input<string>;
  /**
   * "gc" (default): the lifecycle expires nothing (the closure-safe GC deletes; lib/minio/lifecycle.ts says why no
   * abort-multipart rule either); "lifecycle": the expiry rule.
   */
  retention?: pulumi.Input<Retention>;
  /** retention=lifecycle: days after which cached objects expire. Default 7. */
  expireDays?: pulumi.Input<number>;
  /** The nix-cache-info text: objects no larger than it never expire, so it is always kept. */
  cacheInfo: pulumi.Input<string>;
  /** The owning stack, marked in the rule's ID (lib/minio/ownership.ts). Default: unmarked. */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/**
 * The bucket's lifecycle per retention mode: with "lifecycle" the rule that expires old cache objects and never
 * `nix-cache-info`; with "gc" none at all. One resource either way (same name, same owner-marked rule ID
 * scheme), so switching modes updates the bucket's lifecycle in place and deletes no object.
 */
export class CacheExpiry extends pulumi.ComponentResource {
  /** Objects of at most this many bytes are never expired by the rule (nix-cache-info's size). */
  readonly keepUpToBytes: pulumi.Output<number>;
  /** The rules the bucket's lifecycle holds: [] with retention=gc. */
  readonly rules: pulumi.Output<ExpiryRule[]>;

  constructor(name: string, args: CacheExpiryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:CacheExpiry", name, {}, opts);
    const rules = pulumi
      .all([args.retention ?? DEFAULTS.retention, args.expireDays ?? DEFAULTS.expireDays, args.cacheInfo, args.owner])
      .apply(([retention, days, info, owner]) => retentionRules(retention, days, info).map((r) => ({ ...r, id: expiryRuleId(owner?.id) })));
    new MinioLifecycle(
      `${name}-lifecycle`,
      { endpoint: args.endpoint, region: args.region ?? DEFAULTS.region, bucket: args.bucket, rules, owner: args.owner },
      { parent: this },
    );
    this.rules = rules;
    this.keepUpToBytes = pulumi.output(args.cacheInfo).apply((info) => expiryRule(1, info).keepUpToBytes);
    this.registerOutputs({ keepUpToBytes: this.keepUpToBytes, rules: this.rules });
  }
}
