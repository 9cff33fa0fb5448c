import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/settings";
import { markPolicy, StackOwner } from "../lib/ownership";
import { GC_POLICY_ROLES, gcPolicy } from "../lib/policies";
import { MinioPolicy, MinioPolicyAttachment, MinioUser } from "../providers/admin";
import { RandomPassword } from "../providers/secrets";

/** The GC policy's name for a bucket (the builder's is BUCKET-write). */
export const gcPolicyName = (bucket: string): string => `${bucket}-gc`;

export interface GcAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket the GC collects. */
  bucket: pulumi.Input<string>;
  /** The GC's MinIO user name (its access key). Default "nixgc". */
  user?: pulumi.Input<string>;
  /** Length of the generated password. Default 40. */
  passwordLength?: pulumi.Input<number>;
  /** The owning stack: marked in the policy's Sids, and what the user's check knows it by (lib/ownership.ts). */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/**
 * The GC's own user, so the builder never needs DeleteObject: it lists, reads and deletes in the cache bucket,
 * writes only its bookkeeping under gc/, and can neither delete nor rewrite nix-cache-info (lib/policies.ts).
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
    const region = args.region ?? DEFAULTS.region;
    const password = new RandomPassword(`${name}-password`, { length: args.passwordLength ?? 40 }, { parent: this });
    const user = new MinioUser(
      `${name}-user`,
      { endpoint: args.endpoint, region, user: args.user ?? DEFAULTS.gcUser, secretKey: password.result, owner: args.owner },
      { parent: this },
    );
    const policy = new MinioPolicy(
      `${name}-policy`,
      {
        endpoint: args.endpoint,
        region,
        name: pulumi.output(args.bucket).apply(gcPolicyName),
        owner: args.owner,
        document: pulumi.all([args.bucket, args.owner]).apply(([b, owner]) => JSON.stringify(markPolicy(gcPolicy(b), owner, GC_POLICY_ROLES))),
      },
      { parent: this },
    );
    new MinioPolicyAttachment(
      `${name}-attachment`,
      { endpoint: args.endpoint, region, user: user.user, policy: policy.name },
      { parent: this },
    );
    this.accessKey = user.user;
    this.secretKey = pulumi.secret(password.result);
    this.policyName = policy.name;
    this.registerOutputs({ accessKey: this.accessKey, secretKey: this.secretKey, policyName: this.policyName });
  }
}
