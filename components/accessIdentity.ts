// The children both MinIO identities of the cache are made of (BuilderAccess, GcAccess): a generated password, the
// user, a canned policy marked with the owning stack, and the policy's attachment to the user. A function, not a
// component: each identity stays its own component (its own type token and URNs), with these as its children.
import * as pulumi from "@pulumi/pulumi";
import { markPolicy, StackOwner } from "../lib/minio/ownership";
import { PolicyDocument } from "../lib/minio/policies";
import { MinioPolicy, MinioPolicyAttachment, MinioUser } from "../resources/admin";
import { RandomPassword } from "../resources/secrets";

export interface IdentityParts {
  endpoint: pulumi.Input<string>;
  region: pulumi.Input<string>;
  bucket: pulumi.Input<string>;
  user: pulumi.Input<string>;
  passwordLength: pulumi.Input<number>;
  /** A password to keep (the adopted user's existing one) instead of a generated one; a Pulumi secret. */
  password?: pulumi.Input<string>;
  /** `user` is a default: a user this stack already has keeps its name (no rename on upgrade). */
  keepExistingName?: boolean;
  owner?: pulumi.Input<StackOwner | undefined>;
  /** The canned policy's name for the bucket. */
  policyName(bucket: string): string;
  /** What the policy grants on the bucket. */
  policy(bucket: string): PolicyDocument;
  /** The policy statements' roles, marked in their Sids (lib/minio/ownership.ts markPolicy). */
  roles: readonly string[];
}

/** Makes `${name}-password` (unless a password is given), `-user`, `-policy` and `-attachment` under `parent`. */
export function accessIdentity(parent: pulumi.Resource, name: string, parts: IdentityParts) {
  const child = { parent };
  const secretKey = parts.password !== undefined ? pulumi.secret(parts.password) : new RandomPassword(`${name}-password`, { length: parts.passwordLength }, child).result;
  const user = new MinioUser(
    `${name}-user`,
    {
      endpoint: parts.endpoint,
      region: parts.region,
      user: parts.user,
      secretKey,
      owner: parts.owner,
      ...(parts.keepExistingName ? { keepExistingName: true } : {}),
    },
    child,
  );
  const policy = new MinioPolicy(
    `${name}-policy`,
    {
      endpoint: parts.endpoint,
      region: parts.region,
      name: pulumi.output(parts.bucket).apply(parts.policyName),
      owner: parts.owner,
      document: pulumi.all([parts.bucket, parts.owner]).apply(([b, owner]) => JSON.stringify(markPolicy(parts.policy(b), owner, parts.roles))),
    },
    child,
  );
  new MinioPolicyAttachment(`${name}-attachment`, { endpoint: parts.endpoint, region: parts.region, user: user.user, policy: policy.name }, child);
  return { accessKey: user.user, secretKey: pulumi.secret(secretKey), policyName: policy.name };
}
