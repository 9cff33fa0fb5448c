// Which stack owns a MinIO thing. Every bucket, builder user and builder policy a stack makes carries a marker
// with the stack's owner id: a random id made once per stack and kept in its state (the NixCacheOwner
// resource), so it survives `pulumi stack rename`; the project/stack name travels beside it for messages only.
// Pure: the providers (providers/s3.ts, providers/admin.ts) read what MinIO holds and ask these functions;
// kept free of classes and Maps, which do not survive Pulumi's serialization of provider code.
//
// Where the marker lives, on things MinIO keeps as they are written:
// - a bucket: its S3 tags nix-cache-owner=<id> and nix-cache-stack=<project>/<stack> (other tags are kept);
// - an IAM (canned) policy and the bucket policy: every statement's Sid is NixCacheOwner<id><Role>, and the
//   document's Id is "nix-cache <project>/<stack>" (MinIO returns both as written; Sids are compared, the Id is
//   only read for messages, so a stack rename changes nothing);
// - the lifecycle rule: its ID is nix-cache-expiry-<id>;
// - a user (MinIO users have no tags or description): the markers of the policies attached to it; and a user
//   whose password is the one in this stack's state is this stack's (an `up` interrupted before the policy
//   was attached leaves such a user).
import { EXPIRY_RULE_ID, ExpiryRule } from "./lifecycle";
import type { PolicyDocument } from "./policies";

export const OWNER_TAG = "nix-cache-owner";
export const STACK_TAG = "nix-cache-stack";
export const OWNER_SID_PREFIX = "NixCacheOwner";
const POLICY_ID_PREFIX = "nix-cache ";

/** The config key that lets a stack take over a bucket, user or policy it did not make. */
export const ADOPT_KEY = "nix-cache:adopt";

/** This stack as it marks what it owns. */
export interface StackOwner {
  /** 32 lowercase hex digits, random, made once per stack. */
  id: string;
  project: string;
  stack: string;
}

/** An owner as read back from a marker: the id, and the project/stack name when the marker carries it. */
export interface FoundOwner {
  id: string;
  /** "project/stack" at the time of the last write; undefined when the marker does not say. */
  label?: string;
}

/** A thing as found on the server: absent, or present with the owner its markers name (none: unmarked). */
export type Found = { exists: false } | { exists: true; owner?: FoundOwner };

export type Kind = "bucket" | "user" | "policy";

const ID = /^[0-9a-f]{32}$/;
export const isOwnerId = (v: unknown): v is string => typeof v === "string" && ID.test(v);

/** A new owner id (128 random bits). */
export function newOwnerId(): string {
  const crypto: typeof import("crypto") = require("crypto");
  return crypto.randomBytes(16).toString("hex");
}

export const ownerLabel = (o: Pick<StackOwner, "project" | "stack">): string => `${o.project}/${o.stack}`;

// ---------------------------------------------------------------------------------------------- bucket tags

type TagList = { Key?: unknown; Value?: unknown }[] | Record<string, unknown> | undefined | null;

/** Tags as a plain object, from the SDK's [{Key, Value}] list or an object. */
function tagObject(tags: TagList): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(tags)) {
    for (const t of tags) if (typeof t?.Key === "string") out[t.Key] = String(t.Value ?? "");
  } else if (tags && typeof tags === "object") {
    for (const [k, v] of Object.entries(tags)) out[k] = String(v ?? "");
  }
  return out;
}

/** The bucket's tags with this stack's marker set and every other tag kept. */
export function withOwnerTags(existing: TagList, owner: StackOwner): Record<string, string> {
  return { ...tagObject(existing), [OWNER_TAG]: owner.id, [STACK_TAG]: ownerLabel(owner) };
}

/** The bucket's tags without our marker (what is left after the owner lets go of it). */
export function withoutOwnerTags(existing: TagList): Record<string, string> {
  const tags = tagObject(existing);
  delete tags[OWNER_TAG];
  delete tags[STACK_TAG];
  return tags;
}

/** The owner a bucket's tags name, or undefined when they carry no (valid) marker. */
export function ownerOfTags(tags: TagList): FoundOwner | undefined {
  const t = tagObject(tags);
  if (!isOwnerId(t[OWNER_TAG])) return undefined;
  return { id: t[OWNER_TAG], label: t[STACK_TAG] || undefined };
}

// ---------------------------------------------------------------------------------------------- policies

/** Marks a policy document as `owner`'s: Id names the stack, each statement's Sid carries the id. */
export function markPolicy(doc: PolicyDocument, owner: StackOwner | undefined, roles: readonly string[]): PolicyDocument {
  if (!owner || !isOwnerId(owner.id)) return doc;
  return {
    Id: `${POLICY_ID_PREFIX}${ownerLabel(owner)}`,
    ...doc,
    Statement: doc.Statement.map((s, i) => ({ Sid: `${OWNER_SID_PREFIX}${owner.id}${roles[i] ?? `S${i}`}`, ...s })),
  };
}

/**
 * The owner a policy document (text or parsed) names, or undefined when unmarked. MinIO returns the Id as
 * "ID". A document whose statements name two owners is read as the first's.
 */
export function ownerOfPolicy(doc: unknown): FoundOwner | undefined {
  let parsed: unknown = doc;
  if (typeof doc === "string") {
    try {
      parsed = doc.trim() === "" ? {} : JSON.parse(doc);
    } catch {
      return undefined;
    }
  }
  const raw = (parsed ?? {}) as { Id?: unknown; ID?: unknown; Statement?: unknown };
  const statements: unknown[] = Array.isArray(raw.Statement) ? raw.Statement : raw.Statement ? [raw.Statement] : [];
  for (const s of statements) {
    const sid = (s as { Sid?: unknown } | null)?.Sid;
    if (typeof sid !== "string" || !sid.startsWith(OWNER_SID_PREFIX)) continue;
    const id = sid.slice(OWNER_SID_PREFIX.length, OWNER_SID_PREFIX.length + 32);
    if (!isOwnerId(id)) continue;
    const docId = typeof raw.Id === "string" ? raw.Id : typeof raw.ID === "string" ? raw.ID : "";
    return { id, label: docId.startsWith(POLICY_ID_PREFIX) ? docId.slice(POLICY_ID_PREFIX.length) || undefined : undefined };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------- lifecycle

/** The expiry rule's ID for `ownerId` (unmarked: the plain nix-cache-expiry of earlier versions). */
export const expiryRuleId = (ownerId: string | undefined): string => (isOwnerId(ownerId) ? `${EXPIRY_RULE_ID}-${ownerId}` : EXPIRY_RULE_ID);

/** The owner a bucket's lifecycle rules name, or undefined. */
export function ownerOfRules(rules: readonly ExpiryRule[]): FoundOwner | undefined {
  for (const r of rules) {
    const id = r.id.startsWith(`${EXPIRY_RULE_ID}-`) ? r.id.slice(EXPIRY_RULE_ID.length + 1) : "";
    if (isOwnerId(id)) return { id };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------- decisions

/**
 * One owner for a thing with several markers (a user with several policies attached): another stack's
 * marker comes first (that is the one to name), then this stack's; undefined when none is marked.
 */
export function pickOwner(owners: readonly (FoundOwner | undefined)[], us: string | undefined): FoundOwner | undefined {
  const marked = owners.filter((o): o is FoundOwner => o !== undefined);
  return marked.find((o) => o.id !== us) ?? marked[0];
}

/** A bucket's owner: its tags, else (tags removed) the markers of its bucket policy or lifecycle rule. */
export function bucketOwner(tags: TagList, policy: unknown, rules: readonly ExpiryRule[]): FoundOwner | undefined {
  return ownerOfTags(tags) ?? ownerOfPolicy(policy) ?? ownerOfRules(rules);
}

const WHAT: Record<Kind, (name: string) => string> = {
  bucket: (n) => `bucket '${n}'`,
  user: (n) => `MinIO user '${n}'`,
  policy: (n) => `MinIO policy '${n}'`,
};

/** How to pick a name of this stack's own instead, per kind. */
const OTHER_NAME: Record<Kind, string> = {
  bucket: "pulumi config set nix-cache:bucket NAME",
  user: "pulumi config set nix-cache:builderUser NAME (for the builder's user) or nix-cache:gcUser NAME (for the GC's)",
  policy: "pulumi config set nix-cache:bucket NAME (the policies are named BUCKET-write and BUCKET-gc)",
};

/** What taking a thing over overwrites, per kind. */
export const ADOPTION_OVERWRITES: Record<Kind, string> = {
  bucket:
    "adoption overwrites the bucket's anonymous-read policy, its expiry (lifecycle) rule and its nix-cache-info, " +
    "and marks it as this stack's; its cached objects are kept",
  user:
    "adoption overwrites the user's password (whatever uses the old one is locked out) and attaches this stack's " +
    "policy; policies already attached to it stay attached",
  policy: "adoption overwrites the policy's document, which changes what every user it is attached to may do",
};

const describeOwner = (o: FoundOwner) => (o.label ? `stack '${o.label}' (owner id ${o.id})` : `another stack (owner id ${o.id})`);

export interface ClaimArgs {
  kind: Kind;
  name: string;
  found: Found;
  /** This stack's owner id; undefined while it is not known yet (a first preview). */
  us: string | undefined;
  /** nix-cache:adopt. */
  adopt: boolean;
  /**
   * The thing is already in this stack's state (a stack made before markers, marking its own things for the
   * first time): unmarked is then this stack's, not a clash.
   */
  inState: boolean;
}

/**
 * May this stack write (create, adopt or mark) the thing? Undefined when it may; else the refusal, which says
 * nothing was changed, whose the thing is (project/stack when the marker says), how to use another name,
 * and what adoption with nix-cache:adopt=true would overwrite.
 */
export function claimRefusal(a: ClaimArgs): string | undefined {
  if (!a.found.exists || a.adopt) return undefined;
  const owner = a.found.owner;
  if (owner && owner.id === a.us) return undefined;
  if (!owner && a.inState) return undefined;
  const what = WHAT[a.kind](a.name);
  const whose = owner
    ? `${what} belongs to ${describeOwner(owner)}; nothing was changed. Two stacks managing one ${a.kind} overwrite each other's settings.`
    : `${what} exists and is not marked as any nix-cache stack's (made by hand, e.g. with mc, or left by an interrupted run); nothing was changed.`;
  return (
    `${whose} To use a ${a.kind} of this stack's own: ${OTHER_NAME[a.kind]}. ` +
    `To take it over${owner ? " (once the other stack no longer uses it)" : ""}: pulumi config set ${ADOPT_KEY} true, then pulumi up, ` +
    `then pulumi config rm ${ADOPT_KEY}; ${ADOPTION_OVERWRITES[a.kind]}.`
  );
}

/**
 * A thing in this stack's state that another stack has since marked as its own (it adopted it): this stack
 * leaves it alone rather than fight over it. Undefined when it is this stack's (or unmarked, or adopt is set).
 */
export function takenOverRefusal(kind: Kind, name: string, live: FoundOwner | undefined, us: string | undefined, adopt: boolean): string | undefined {
  if (!live || live.id === us || adopt || !isOwnerId(us)) return undefined;
  return (
    `${WHAT[kind](name)} of this stack is now marked as ${describeOwner(live)}, which took it over; nothing was changed. ` +
    `To leave it to that stack, drop it from this one (pulumi destroy leaves things other stacks own in place). ` +
    `To take it back: pulumi config set ${ADOPT_KEY} true, then pulumi up, then pulumi config rm ${ADOPT_KEY}; ${ADOPTION_OVERWRITES[kind]}.`
  );
}

/** May this stack's destroy delete the thing? Only when no other stack's marker is on it. */
export const mayDelete = (live: FoundOwner | undefined, us: string | undefined): boolean => !live || !isOwnerId(us) || live.id === us;

/** Reads nix-cache:adopt (unset or "" is false); a problem instead of a throw, as readAllowBucketRename. */
export function readAdopt(value: string | undefined): { allowed: boolean; problem?: string } {
  if (value === undefined || value === "" || value === "false") return { allowed: false };
  if (value === "true") return { allowed: true };
  return { allowed: false, problem: `${ADOPT_KEY} is ${JSON.stringify(value)}: allowed is true or false` };
}
