import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS, defaultUserNames } from "../lib/config/settings";
import { StackOwner } from "../lib/minio/ownership";
import { GC_POLICY_ROLES, gcPolicy } from "../lib/minio/policies";
import { accessIdentity } from "./accessIdentity";

/** The GC policy's name for a bucket (the builder's is BUCKET-write). */
export const gcPolicyName = (bucket: string): string => `${bucket}-gc`;

export interface GcAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket the GC collects. */
  bucket: pulumi.Input<string>;
  /**
   * The GC's MinIO user name. Default "nixgc" for the bucket "nix-cache", else "BUCKET-gc"; a stack that
   * already has the user keeps its name.
   */
  user?: pulumi.Input<string>;
  /** Length of the generated password. Default 40. */
  passwordLength?: pulumi.Input<number>;
  /** The owning stack: marked in the policy's Sids, and what the user's check knows it by (lib/minio/ownership.ts). */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/**
 * The GC's own user, so the builder never needs DeleteObject: it lists, reads and deletes in the cache bucket,
 * writes only its bookkeeping under gc/, and can neither delete nor rewrite nix-cache-info (lib/minio/policies.ts).
 */
export class GcAccess extends pulumi.ComponentResource {
  /** The GC's access key (its user name). */
  readonly accessKey: pulumi.Output<string>;
  /** The GC's secret key (a Pulumi secret). */
  readonly secretKey: pulumi.Output<string>;
  /** The canned policy's name (BUCKET-gc). */
  readonly policyName: pulumi.Output<string>;

  constructor(name: string, args: GcAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:GcAccess", name, {}, opts);
    const identity = accessIdentity(this, name, {
      endpoint: args.endpoint,
      region: args.region ?? DEFAULTS.region,
      bucket: args.bucket,
      user: args.user ?? pulumi.output(args.bucket).apply((b) => defaultUserNames(b).gcUser),
      keepExistingName: args.user === undefined,
      passwordLength: args.passwordLength ?? 40,
      owner: args.owner,
      policyName: gcPolicyName,
      policy: gcPolicy,
      roles: GC_POLICY_ROLES,
    });
    this.accessKey = identity.accessKey;
    this.secretKey = identity.secretKey;
    this.policyName = identity.policyName;
    this.registerOutputs({ accessKey: this.accessKey, secretKey: this.secretKey, policyName: this.policyName });
  }
}
