// The takeover of a cache made by hand (the chapter's `mc` set-up) with nix-cache:adopt=true, planned before
// anything is written: what the stack finds on MinIO, what it will change there and why, and when it must not
// go ahead (a key hosts trust would be replaced by a new one of the same name). Pure: the takeover provider
// (providers/takeover.ts) reads MinIO and calls takeoverPlan; the program prints the lines in the preview.
// Kept free of classes and Maps, which do not survive Pulumi's serialization of provider code.
import type { AccessMode, Retention } from "../config/settings";
import { CACHE_INFO_CONTENT_TYPE } from "../config/cacheInfo";
import { ALLOW_KEY_DROP_KEY } from "../signing/keyRing";
import type { ExpiryRule } from "./lifecycle";
import { anonymousPolicy, builderPolicy, canonicalPolicy, gcPolicy } from "./policies";

/** What the takeover found on MinIO. */
export interface TakeoverFacts {
  bucket: string;
  bucketExists: boolean;
  /** Objects in the bucket (counted up to objectCountLimit). */
  objectCount: number;
  objectCountCapped: boolean;
  /** The bucket policy as JSON text; "" when none. */
  bucketPolicy: string;
  rules: ExpiryRule[];
  /** nix-cache-info as stored; undefined when missing. */
  cacheInfo?: { content: string; contentType: string };
  /** Key names on the Sig lines of the narinfos sampled, with how many of them carry each. */
  signers: { name: string; narinfos: number }[];
  narinfosSampled: number;
  builder: UserFacts;
  builderPolicy: PolicyFacts;
  gc: UserFacts;
  gcPolicy: PolicyFacts;
}

export interface UserFacts {
  name: string;
  exists: boolean;
  /** Policies attached to the user. */
  policies: string[];
  /** The password the stack keeps works for the user; undefined when the stack keeps none (a generated one). */
  keptPasswordWorks?: boolean;
}

export interface PolicyFacts {
  name: string;
  /** The document as MinIO returns it; undefined when the policy does not exist. */
  document?: unknown;
}

/** What the stack is about to make of it. */
export interface TakeoverWanted {
  anonymousList: boolean;
  /** nix-cache:access; a takeover record from before private caches has none: "public". */
  access?: AccessMode;
  retention: Retention;
  expireDays: number;
  cacheInfo: string;
  /** The ring's names, the active first (keyName, previousKeyNames). */
  keyNames: string[];
  /** Public keys (Nix format) of the keys given in nix-cache:importKeys. */
  importedPublicKeys: string[];
  allowKeyDrop: boolean;
}

export interface TakeoverPlan {
  /** One line per thing taken over: what it is now → what it becomes, and why. */
  lines: string[];
  /** Set when the takeover must not go ahead: why, and what to do instead. */
  refusal?: string;
}

const nameOf = (key: string): string => key.slice(0, Math.max(0, key.indexOf(":")));
const list = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(", ");
const short = (action: string): string => action.replace(/^s3:/, "");

/** A policy's allowed and denied actions and the resources they are on, each as a sorted set (markers aside). */
function grants(doc: unknown): { allow: string[]; deny: string[]; resources: string[] } {
  let parsed: { Effect: string; Action: string[]; Resource: string[] }[];
  try {
    parsed = JSON.parse(canonicalPolicy(doc)) as typeof parsed;
  } catch {
    parsed = [];
  }
  const set = (v: string[]) => [...new Set(v)].sort();
  return {
    allow: set(parsed.filter((s) => s.Effect === "Allow").flatMap((s) => s.Action.map(short))),
    deny: set(parsed.filter((s) => s.Effect === "Deny").flatMap((s) => s.Action.map(short))),
    resources: set(parsed.flatMap((s) => s.Resource.map((r) => r.replace(/^arn:aws:s3:::/, "")))),
  };
}

/**
 * The difference between two policies in words: "allows also …; no longer allows …; …", or "" when they grant
 * the same actions on the same bucket (the chapter's one statement and our bucket and object statements do).
 */
function grantChange(from: unknown, to: unknown): string {
  const before = grants(from);
  const after = grants(to);
  const words: string[] = [];
  const diff = (key: "allow" | "deny" | "resources", more: string, less: string) => {
    const added = after[key].filter((g) => !before[key].includes(g));
    const removed = before[key].filter((g) => !after[key].includes(g));
    if (added.length) words.push(`${more} ${added.join(", ")}`);
    if (removed.length) words.push(`${less} ${removed.join(", ")}`);
  };
  diff("allow", "also allows", "no longer allows");
  diff("deny", "also denies", "no longer denies");
  diff("resources", "also covers", "no longer covers");
  return words.join("; ");
}

/** Anonymous actions (Allow to everyone) a bucket policy grants, without the s3: prefix, sorted. */
function anonymousActions(policyText: string): string[] {
  if (policyText.trim() === "") return [];
  let parsed: { Effect: string; Principal: string[]; Action: string[] }[];
  try {
    parsed = JSON.parse(canonicalPolicy(policyText)) as typeof parsed;
  } catch {
    return ["(a policy that is not valid JSON)"];
  }
  const actions = parsed.filter((s) => s.Effect === "Allow" && s.Principal.includes("*")).flatMap((s) => s.Action.map(short));
  return [...new Set(actions)].sort();
}

function anonymousLine(facts: TakeoverFacts, wanted: TakeoverWanted): string | undefined {
  const live = anonymousActions(facts.bucketPolicy);
  if (wanted.access === "private") {
    if (live.length === 0) return undefined;
    const now = live.join(",") === "GetBucketLocation,GetObject,ListBucket" ? "'download' (mc anonymous set download)" : `anyone may ${live.join(", ")}`;
    return `anonymous access: ${now} → none (nix-cache:access private): hosts read with the reader's credentials or a read-proxy token`;
  }
  const want = wanted.anonymousList ? "read objects and list the bucket (GetObject, ListBucket; nix-cache:anonymousList)" : "read objects only (GetObject)";
  if (canonicalPolicy(facts.bucketPolicy || "{}") === canonicalPolicy(anonymousPolicy(facts.bucket, wanted.anonymousList))) return undefined;
  if (live.length === 0) return `anonymous access: none → ${want}, so hosts substitute without credentials`;
  const isDownload = live.join(",") === "GetBucketLocation,GetObject,ListBucket";
  const now = isDownload ? "'download' (mc anonymous set download: anyone may list every path in the bucket, and read it)" : `anyone may ${live.join(", ")}`;
  const why = live.includes("ListBucket") && !wanted.anonymousList ? ": Nix never lists a cache, and a listing tells anyone what it holds" : "";
  return `anonymous access: ${now} → ${want}${why}`;
}

function describeRule(r: ExpiryRule): string {
  const scope = r.keepUpToBytes > 0 ? `objects over ${r.keepUpToBytes} bytes` : r.prefix ? `objects under '${r.prefix}'` : "every object, nix-cache-info included";
  return `'${r.id || "(no ID)"}' (${r.enabled ? "" : "disabled: "}expires ${scope} after ${r.days} days)`;
}

function lifecycleLine(facts: TakeoverFacts, wanted: TakeoverWanted, cacheInfoBytes: number): string | undefined {
  const theirs = facts.rules;
  if (theirs.length === 0 && wanted.retention === "gc") return undefined;
  const now = theirs.length === 0 ? "no expiry rule" : `expiry rule${theirs.length > 1 ? "s" : ""} ${theirs.map(describeRule).join(", ")}`;
  const breaks = theirs.some((r) => r.enabled && r.keepUpToBytes === 0 && r.prefix === "")
    ? ": an age rule expires each object on its own, which breaks closures (a path stays while a dependency is gone), and expiring nix-cache-info turns the cache off for every host"
    : "";
  if (wanted.retention === "gc") {
    return `bucket lifecycle: ${now} → removed; retention=gc: the closure-safe GC (npm run gc) deletes old paths with their whole closures${breaks}`;
  }
  return (
    `bucket lifecycle: ${now} → this stack's rule (retention=lifecycle): expires objects over ${cacheInfoBytes} bytes after ${wanted.expireDays} days, ` +
    `so never nix-cache-info${breaks ? "; it still breaks closures (retention=gc does not)" : ""}`
  );
}

function cacheInfoLine(facts: TakeoverFacts, wanted: TakeoverWanted): string | undefined {
  const live = facts.cacheInfo;
  if (!live) return `nix-cache-info: missing → written (${wanted.cacheInfo.trim().split("\n").join(", ")}): without it no host uses the cache`;
  const sameText = live.content === wanted.cacheInfo;
  if (sameText && live.contentType === CACHE_INFO_CONTENT_TYPE) return undefined;
  if (sameText) return `nix-cache-info: the same text; its content type '${live.contentType}' → '${CACHE_INFO_CONTENT_TYPE}' (written again, byte for byte)`;
  const flat = (t: string) => t.trim().split("\n").join(", ");
  return `nix-cache-info: '${flat(live.content)}' → '${flat(wanted.cacheInfo)}' (nix-cache:storeDir, wantMassQuery, priority)`;
}

function userLines(role: "builder" | "GC", user: UserFacts, policy: PolicyFacts, wantedPolicy: unknown): string[] {
  const lines: string[] = [];
  const setting = role === "builder" ? "nix-cache:builderPassword" : undefined;
  if (!user.exists) lines.push(`${role} user '${user.name}': does not exist → made, with a generated password`);
  else if (user.keptPasswordWorks === true) {
    lines.push(`${role} user '${user.name}': password kept (${setting} is its current password), so what already uses it (the builder's ~/.aws/credentials) keeps working`);
  } else if (user.keptPasswordWorks === false) {
    lines.push(
      `${role} user '${user.name}': ${setting} is NOT its current password → the password is set to it, and whatever uses the current one ` +
        `(the builder's ~/.aws/credentials) is locked out until it gets the new one`,
    );
  } else {
    const keep = setting ? ` (to keep the current one: pulumi config set --secret ${setting} PASSWORD)` : "";
    lines.push(
      `${role} user '${user.name}': its password → a new generated one (MinIO never reveals a password): whatever uses the current one is locked out ` +
        `until it gets the ${role === "builder" ? "awsCredentials" : "gcCredentials"} output${keep}`,
    );
  }
  const others = user.policies.filter((p) => p !== policy.name);
  if (user.exists && others.length > 0) lines.push(`${role} user '${user.name}': policies ${list(others)} stay attached (not this stack's; detach them by hand if they grant too much)`);
  if (policy.document === undefined) lines.push(`${role} policy '${policy.name}': does not exist → made and attached to '${user.name}'`);
  else {
    const change = grantChange(policy.document, wantedPolicy);
    lines.push(
      change
        ? `${role} policy '${policy.name}': its document → this stack's, which ${change}`
        : `${role} policy '${policy.name}': the same actions on the same bucket as its document now; rewritten only to mark it as this stack's (statement Sids)`,
    );
  }
  return lines;
}

/**
 * The plan of a takeover: one line per change (now → then, and why), the things kept said as kept, and a
 * refusal when the cache's paths are signed by a key name this stack would give a newly generated key: hosts
 * trusting the old key by that name would reject every new push, and hosts given the stack's module every old
 * path (Nix keys trusted keys by name). Importing the key (nix-cache:importKeys) or allowKeyDrop lifts it.
 */
export function takeoverPlan(facts: TakeoverFacts, wanted: TakeoverWanted): TakeoverPlan {
  const lines: string[] = [];
  const cacheInfoBytes = Buffer.byteLength(wanted.cacheInfo, "utf8");
  if (!facts.bucketExists) lines.push(`bucket '${facts.bucket}': does not exist → made new (nothing to take over)`);
  else {
    const count = `${facts.objectCount}${facts.objectCountCapped ? " or more" : ""}`;
    lines.push(`bucket '${facts.bucket}': taken over and marked as this stack's (its tags); its ${count} objects are kept as they are, none deleted or rewritten`);
  }
  for (const line of [anonymousLine(facts, wanted), lifecycleLine(facts, wanted, cacheInfoBytes), facts.bucketExists ? cacheInfoLine(facts, wanted) : undefined]) {
    if (line) lines.push(line);
  }
  lines.push(...userLines("builder", facts.builder, facts.builderPolicy, builderPolicy(facts.bucket)));
  lines.push(...userLines("GC", facts.gc, facts.gcPolicy, gcPolicy(facts.bucket)));

  const imported = wanted.importedPublicKeys.map(nameOf);
  let refusal: string | undefined;
  for (const name of wanted.keyNames) {
    const signer = facts.signers.find((s) => s.name === name);
    if (imported.includes(name)) {
      const pub = wanted.importedPublicKeys.find((k) => nameOf(k) === name);
      lines.push(`signing key '${name}': imported (nix-cache:importKeys), the key hosts already trust: ${pub}`);
    } else if (signer && !wanted.allowKeyDrop) {
      refusal ??=
        `the cache's paths are signed by a key named '${name}' (${signer.narinfos} of the ${facts.narinfosSampled} narinfos looked at), and this stack ` +
        `would generate a new key under that name; nothing was changed. Nix identifies trusted keys by name: hosts that trust the old '${name}' ` +
        `would reject every path the builder signs from now on, and hosts given this stack's module would reject every path signed before. ` +
        `Import the existing key: pulumi config set --secret --path 'nix-cache:importKeys[0]' "$(cat ~/.config/nix/secret.key)". ` +
        `If it is lost, give this stack's key another name (pulumi config set nix-cache:keyName NEW-NAME) and resign (npm run resign), so hosts can ` +
        `trust both while they move. To replace '${name}' anyway: pulumi config set ${ALLOW_KEY_DROP_KEY} true.`;
    } else if (signer) {
      lines.push(`signing key '${name}': a NEW key under the name the cache's paths are signed with (${ALLOW_KEY_DROP_KEY}): hosts that trust the old one reject every new path`);
    } else {
      lines.push(`signing key '${name}': generated (new); hosts need the stack's publicKey output (npm run host-config)`);
    }
  }
  const foreign = facts.signers.filter((s) => !wanted.keyNames.includes(s.name));
  if (foreign.length > 0) {
    lines.push(
      `signatures by keys this stack does not hold stay as they are: ${foreign.map((s) => `'${s.name}' (${s.narinfos} of ${facts.narinfosSampled} narinfos)`).join(", ")}`,
    );
  }
  return refusal ? { lines, refusal } : { lines };
}

/** The key names on the `Sig:` lines of a narinfo's text. */
export function signerNamesOf(narinfo: string): string[] {
  const names: string[] = [];
  for (const line of narinfo.split("\n")) {
    const m = /^Sig: ([^:\s]+):/.exec(line);
    if (m && !names.includes(m[1])) names.push(m[1]);
  }
  return names;
}

/** What the takeover record says once done: the preview before it showed the plan. */
export const TAKEN_OVER = "done: this stack owns the cache now; remove the opt-in (pulumi config rm nix-cache:adopt), then pulumi up";
