import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS, defaultUserNames } from "../lib/config/settings";
import { StackOwner } from "../lib/minio/ownership";
import { builderPolicy } from "../lib/minio/policies";
import { accessIdentity } from "./accessIdentity";

export interface BuilderAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket the builder writes to. */
  bucket: pulumi.Input<string>;
  /**
   * The builder's MinIO user name (its access key). Default "nixbuilder" for the bucket "nix-cache", else
   * "BUCKET-builder"; a stack that already has the user keeps its name.
   */
  user?: pulumi.Input<string>;
  /** The user's existing password, kept (a takeover); a Pulumi secret. Default: a generated one. */
  password?: pulumi.Input<string>;
  /** Length of the generated password. Default 40. */
  passwordLength?: pulumi.Input<number>;
  /** The owning stack: marked in the policy's Sids, and what the user's check knows it by (lib/minio/ownership.ts). */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/** The builder user with a generated password and a write-only-to-this-bucket policy (no delete, no admin). */
export class BuilderAccess extends pulumi.ComponentResource {
  /** The builder's access key (its user name). */
  readonly accessKey: pulumi.Output<string>;
  /** The builder's secret key (a Pulumi secret). */
  readonly secretKey: pulumi.Output<string>;
  /** The canned policy's name. */
  readonly policyName: pulumi.Output<string>;

  constructor(name: string, args: BuilderAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:BuilderAccess", name, {}, opts);
    const identity = accessIdentity(this, name, {
      endpoint: args.endpoint,
      region: args.region ?? DEFAULTS.region,
      bucket: args.bucket,
      user: args.user ?? pulumi.output(args.bucket).apply((b) => defaultUserNames(b).builderUser),
      keepExistingName: args.user === undefined,
      password: args.password,
      passwordLength: args.passwordLength ?? 40,
      owner: args.owner,
      policyName: (b) => `${b}-write`,
      policy: builderPolicy,
      roles: ["Bucket", "Objects"],
    });
    this.accessKey = identity.accessKey;
    this.secretKey = identity.secretKey;
    this.policyName = identity.policyName;
    this.registerOutputs({ accessKey: this.accessKey, secretKey: this.secretKey, policyName: this.policyName });
  }
}
