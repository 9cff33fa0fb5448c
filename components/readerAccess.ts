import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS, defaultUserNames } from "../lib/config/settings";
import { StackOwner } from "../lib/minio/ownership";
import { READER_POLICY_ROLES, readerPolicy } from "../lib/minio/policies";
import { RandomPassword } from "../resources/secrets";
import { accessIdentity } from "./accessIdentity";

/** The reader policy's name for a bucket (the builder's is BUCKET-write, the GC's BUCKET-gc). */
export const readerPolicyName = (bucket: string): string => `${bucket}-read`;

export interface ReaderAccessArgs {
  /** MinIO S3 API URL (scheme://host[:port]). */
  endpoint: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** The cache bucket the reader reads. */
  bucket: pulumi.Input<string>;
  /** The reader's MinIO user name. Default "nixreader" for the bucket "nix-cache", else "BUCKET-reader". */
  user?: pulumi.Input<string>;
  /** Hosts that each get their own read-proxy token; a host left out has none (revoked). Default none. */
  hosts?: string[];
  /** Length of the generated password and of each token. Default 40. */
  passwordLength?: pulumi.Input<number>;
  /** The owning stack: marked in the policy's Sids, and what the user's check knows it by (lib/minio/ownership.ts). */
  owner?: pulumi.Input<StackOwner | undefined>;
}

/**
 * The reading identity of a private cache (nix-cache:access=private): a user that may read objects and list the
 * bucket, nothing else, and one generated token per host for the read proxy (lib/proxy).
 */
export class ReaderAccess extends pulumi.ComponentResource {
  /** The reader's access key (its user name). */
  readonly accessKey: pulumi.Output<string>;
  /** The reader's secret key (a Pulumi secret). */
  readonly secretKey: pulumi.Output<string>;
  /** The canned policy's name (BUCKET-read). */
  readonly policyName: pulumi.Output<string>;
  /** host → its proxy token (a Pulumi secret). */
  readonly tokens: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: ReaderAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:ReaderAccess", name, {}, opts);
    const passwordLength = args.passwordLength ?? 40;
    const identity = accessIdentity(this, name, {
      endpoint: args.endpoint,
      region: args.region ?? DEFAULTS.region,
      bucket: args.bucket,
      user: args.user ?? pulumi.output(args.bucket).apply((b) => defaultUserNames(b).readerUser),
      passwordLength,
      owner: args.owner,
      policyName: readerPolicyName,
      policy: readerPolicy,
      roles: READER_POLICY_ROLES,
    });
    // One token resource per host, named after it: removing a host deletes its token, and only its token.
    const tokens = (args.hosts ?? []).map((host) => ({ host, token: new RandomPassword(`${name}-token-${host}`, { length: passwordLength }, { parent: this }).result }));
    this.accessKey = identity.accessKey;
    this.secretKey = identity.secretKey;
    this.policyName = identity.policyName;
    this.tokens = pulumi.secret(pulumi.all(tokens.map((t) => t.token)).apply((values) => Object.fromEntries(tokens.map((t, i) => [t.host, values[i]]))));
    this.registerOutputs({ accessKey: this.accessKey, secretKey: this.secretKey, policyName: this.policyName, tokens: this.tokens });
  }
}
