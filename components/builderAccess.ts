import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/settings";
import { markPolicy, StackOwner } from "../lib/ownership";
import { builderPolicy } from "../lib/policies";
import { MinioPolicy, MinioPolicyAttachment, MinioUser } from "../providers/admin";
import { RandomPassword } from "../providers/secrets";

export interface BuilderAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket the builder writes to. */
  bucket: pulumi.Input<string>;
  /** The builder's MinIO user name (its access key). Default "nixbuilder". */
  user?: pulumi.Input<string>;
  /** Length of the generated password. Default 40. */
  passwordLength?: pulumi.Input<number>;
  /** The owning stack: marked in the policy's Sids, and what the user's check knows it by (lib/ownership.ts). */
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
    const region = args.region ?? DEFAULTS.region;
    const password = new RandomPassword(`${name}-password`, { length: args.passwordLength ?? 40 }, { parent: this });
    const user = new MinioUser(
      `${name}-user`,
      { endpoint: args.endpoint, region, user: args.user ?? DEFAULTS.builderUser, secretKey: password.result, owner: args.owner },
      { parent: this },
    );
    const policy = new MinioPolicy(
      `${name}-policy`,
      {
        endpoint: args.endpoint,
        region,
        name: pulumi.output(args.bucket).apply((b) => `${b}-write`),
        owner: args.owner,
        document: pulumi.all([args.bucket, args.owner]).apply(([b, owner]) => JSON.stringify(markPolicy(builderPolicy(b), owner, ["Bucket", "Objects"]))),
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
