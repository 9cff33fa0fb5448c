// Dynamic resources on MinIO's admin API: a user, a canned policy, and the policy's attachment to the user.
import * as pulumi from "@pulumi/pulumi";
import { canonicalPolicy } from "../lib/minio/policies";
import { Found, FoundOwner, mayDelete, ownerOfPolicy, pickOwner } from "../lib/minio/ownership";
import { AdminCredentials, errorCode, minioAdmin, minioCall, MinioTarget, s3Client } from "./minioClients";
import {
  adminOf,
  checkClaim,
  configureAdmin,
  ConfiguredProvider,
  diffProps,
  enforceClaim,
  enforceNotTakenOver,
  known,
  OwnerMark,
  ownerIdOf,
  TargetProps,
  targetOf,
  UNKNOWN_INPUT,
} from "./common";

// ---------------------------------------------------------------------------------------------- user

export interface UserProps extends TargetProps {
  user: string;
  /** The user's password (MinIO's secret key); a Pulumi secret. */
  secretKey: string;
  /** Read back: "enabled" unless someone disabled the user. */
  status?: string;
  /** Read back: false when the password no longer works (changed outside Pulumi). */
  secretKeyWorks?: boolean;
  /**
   * This stack's owner id (lib/minio/ownership.ts). A user has no marker of its own: it is the stack's whose
   * marked policy is attached to it, or whose password it has.
   */
  owner?: OwnerMark;
  /** Read back when the password changed and another stack's policy is attached: that stack took it over. */
  liveOwner?: OwnerMark;
  /** `user` is a default name: a user this stack already has keeps its own name (no rename on upgrade). */
  keepExistingName?: boolean;
}

/**
 * Does the password still work? MinIO never returns it, so sign a harmless request as the user: a wrong
 * password is refused as a bad signature, a right one gets an answer (access denied is fine).
 */
export async function passwordWorks(props: Pick<UserProps, "user" | "secretKey">, target: MinioTarget): Promise<boolean> {
  const client = s3Client(target, { accessKey: props.user, secretKey: props.secretKey });
  try {
    await client.listBuckets();
    return true;
  } catch (err) {
    const code = errorCode(err);
    if (code === "SignatureDoesNotMatch" || code === "InvalidAccessKeyId") return false;
    if (code === "AccessDenied") return true;
    throw err;
  }
}

/** The owners the markers of the user's attached policies name (another stack's first; lib/minio/ownership.ts). */
async function attachedOwner(target: MinioTarget, admin: AdminCredentials, policies: string[], us: string | undefined): Promise<FoundOwner | undefined> {
  const owners: (FoundOwner | undefined)[] = [];
  for (const p of policies) owners.push(ownerOfPolicy(await minioAdmin.policyDocument(target, admin, p)));
  return pickOwner(owners, us);
}

/**
 * The user as MinIO has it: absent, or present with its owner. `secretKey` is this stack's password for it
 * (undefined while unknown): a user it works for is this stack's, whatever is attached (an interrupted up
 * made it before its policy was attached; nobody else has this stack's random password).
 */
export async function liveUser(target: MinioTarget, admin: AdminCredentials, user: string, secretKey: string | undefined, us: string | undefined): Promise<Found> {
  const info = await minioAdmin.userInfo(target, admin, user);
  if (!info) return { exists: false };
  if (us && known(secretKey) && info.status === "enabled" && (await passwordWorks({ user, secretKey: secretKey ?? "" } as UserProps, target))) {
    return { exists: true, owner: { id: us } };
  }
  return { exists: true, owner: await attachedOwner(target, admin, info.policies, us) };
}

/** Refuses a user that exists and is another stack's or nobody's, unless nix-cache:adopt (lib/minio/ownership.ts). */
async function claimUser(provider: ConfiguredProvider, props: UserProps, inState: boolean): Promise<void> {
  const target = targetOf(props, provider);
  const found = await minioCall(`read user ${props.user}`, target, () => liveUser(target, adminOf(provider), props.user, props.secretKey, ownerIdOf(props.owner)));
  enforceClaim(provider, { kind: "user", name: props.user, found, us: ownerIdOf(props.owner), inState });
}

export const userProvider: pulumi.dynamic.ResourceProvider<UserProps, UserProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async check(olds, news) {
    // A default name (nix-cache:builderUser or gcUser unset) never renames a user this stack already has.
    if (news.keepExistingName && known(olds?.user) && known(news.user) && olds.user !== news.user) news = { ...news, user: olds.user };
    // A user new to this stack that exists and is another stack's or nobody's is refused in the preview.
    if (olds?.user !== news.user && known(news.user) && known(news.endpoint)) await checkClaim(() => claimUser(this, news, false));
    return { inputs: news };
  },
  async create(inputs) {
    await claimUser(this, inputs, false);
    const admin = adminOf(this);
    await minioAdmin.addUser(targetOf(inputs, this), admin, inputs.user, inputs.secretKey);
    return { id: inputs.user, outs: { ...inputs, status: "enabled", secretKeyWorks: true } };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const target = targetOf(props, this);
    const info = await minioAdmin.userInfo(target, adminOf(this), props.user);
    if (!info) return { id: "" };
    const works =
      info.status === "enabled"
        ? await minioCall(`check the password of user ${props.user}`, target, () => passwordWorks(props, target))
        : (props.secretKeyWorks ?? true);
    // A changed password may be another stack's doing (it adopted the user): then its policy is attached.
    const us = ownerIdOf(props.owner);
    const other = works ? undefined : await attachedOwner(target, adminOf(this), info.policies, us);
    const { liveOwner: _before, ...rest } = props;
    const taken = other && other.id !== us ? { liveOwner: { id: other.id, ...(other.label ? { label: other.label } : {}) } } : {};
    return { id, props: { ...rest, status: info.status, secretKeyWorks: works, ...taken } };
  },
  async diff(_id, olds, news) {
    // Another stack took the user over (adopted it): leave it alone instead of setting the password back.
    enforceNotTakenOver(this, "user", olds.user, olds.liveOwner, ownerIdOf(news.owner));
    const wanted = { ...news, status: "enabled", secretKeyWorks: true };
    const diff = diffProps({ ...olds, status: olds.status ?? "enabled", secretKeyWorks: olds.secretKeyWorks ?? true }, wanted, ["endpoint", "user"], [
      "secretKey",
      "status",
      "secretKeyWorks",
      "region",
    ]);
    // A user of a stack from before markers learns the owner id once (its marker on MinIO is the attached
    // policy; this state copy lets a later read tell when another stack took the user over).
    const owner = String(news.owner?.id ?? "").includes(UNKNOWN_INPUT) || (olds.owner?.id ?? "") !== (news.owner?.id ?? "");
    return { ...diff, changes: diff.changes || owner };
  },
  async update(_id, _olds, news) {
    // This stack's user by its state: refused only when another stack's policy is on it and the password changed.
    await claimUser(this, news, true);
    // add-user on an existing user sets its password and enables it; its policy attachments stay.
    await minioAdmin.addUser(targetOf(news, this), adminOf(this), news.user, news.secretKey);
    return { outs: { ...news, status: "enabled", secretKeyWorks: true } };
  },
  async delete(_id, props) {
    const target = targetOf(props, this);
    const found = await minioCall(`read user ${props.user}`, target, () => liveUser(target, adminOf(this), props.user, props.secretKey, ownerIdOf(props.owner)));
    // Another stack took it over (adopted it): it is that stack's to delete.
    if (found.exists && !mayDelete(found.owner, ownerIdOf(props.owner))) return;
    await minioAdmin.removeUser(target, adminOf(this), props.user);
  },
};


// ---------------------------------------------------------------------------------------------- canned policy

export interface PolicyProps extends TargetProps {
  name: string;
  /** This stack's owner (its id is in the document's Sids); kept as written, so destroy knows its own. */
  owner?: OwnerMark;
  /** The policy document as JSON text. */
  document: string;
}

/** What a policy grants, and whose marker it carries (the Sids; not the Id, which only names the stack). */
const markedPolicy = (doc: unknown): string => `${canonicalPolicy(doc)} owner=${ownerOfPolicy(doc)?.id ?? ""}`;

/** The policy as MinIO has it: absent, or present with the owner its Sids name. */
export async function livePolicy(target: MinioTarget, admin: AdminCredentials, name: string): Promise<Found> {
  const live = await minioAdmin.policyDocument(target, admin, name);
  return live === undefined ? { exists: false } : { exists: true, owner: ownerOfPolicy(live) };
}

/**
 * Refuses a policy that exists and is another stack's or nobody's, unless nix-cache:adopt (lib/minio/ownership.ts).
 * `inState`: the policy is this stack's by its state (a stack from before markers, marking it now).
 */
async function claimPolicy(provider: ConfiguredProvider, props: PolicyProps, inState: boolean): Promise<void> {
  const found = await livePolicy(targetOf(props, provider), adminOf(provider), props.name);
  enforceClaim(provider, { kind: "policy", name: props.name, found, us: ownerOfPolicy(props.document)?.id, inState });
}

export const policyProvider: pulumi.dynamic.ResourceProvider<PolicyProps, PolicyProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async check(olds, news) {
    // A policy new to this stack that exists and is another stack's or nobody's is refused in the preview.
    if (olds?.name !== news.name && known(news.name) && known(news.endpoint) && known(news.document)) {
      await checkClaim(() => claimPolicy(this, news, false));
    }
    return { inputs: news };
  },
  async create(inputs) {
    await claimPolicy(this, inputs, false);
    await minioAdmin.putPolicy(targetOf(inputs, this), adminOf(this), inputs.name, inputs.document);
    return { id: inputs.name, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const live = await minioAdmin.policyDocument(targetOf(props, this), adminOf(this), props.name);
    if (live === undefined) return { id: "" };
    const same = markedPolicy(live) === markedPolicy(props.document);
    return { id, props: { ...props, document: same ? props.document : JSON.stringify(live) } };
  },
  async diff(_id, olds, news) {
    // Another stack took the policy over (adopted it): leave it alone instead of fighting over it.
    enforceNotTakenOver(this, "policy", olds.name, ownerOfPolicy(olds.document), ownerIdOf(news.owner));
    return diffProps(olds, news, ["endpoint", "name"], ["document", "region"], { document: markedPolicy });
  },
  async update(_id, olds, news) {
    // Marking a policy of a stack from before markers: this stack's by its state, unless another stack's now.
    if (ownerOfPolicy(olds.document)?.id !== ownerOfPolicy(news.document)?.id) await claimPolicy(this, news, true);
    await minioAdmin.putPolicy(targetOf(news, this), adminOf(this), news.name, news.document);
    return { outs: news };
  },
  async delete(_id, props) {
    const live = await minioAdmin.policyDocument(targetOf(props, this), adminOf(this), props.name);
    // Another stack took it over (adopted it): it is that stack's to delete.
    if (live !== undefined && !mayDelete(ownerOfPolicy(live), ownerIdOf(props.owner))) return;
    await minioAdmin.removePolicy(targetOf(props, this), adminOf(this), props.name);
  },
};


// ---------------------------------------------------------------------------------------------- attachment

export interface AttachmentProps extends TargetProps {
  user: string;
  policy: string;
}

export const attachmentProvider: pulumi.dynamic.ResourceProvider<AttachmentProps, AttachmentProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    await minioAdmin.attachPolicy(targetOf(inputs, this), adminOf(this), inputs.user, inputs.policy);
    return { id: `${inputs.user}/${inputs.policy}`, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const info = await minioAdmin.userInfo(targetOf(props, this), adminOf(this), props.user);
    return info && info.policies.includes(props.policy) ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "user", "policy"], ["region"]);
  },
  async update(_id, _olds, news) {
    return { outs: news };
  },
  async delete(_id, props) {
    await minioAdmin.attachPolicy(targetOf(props, this), adminOf(this), props.user, props.policy, true);
  },
};

