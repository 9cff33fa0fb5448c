// Validation of the stack configuration: every bad value is reported, naming the setting and what is
// allowed, before any resource is declared (so before any request reaches MinIO).
import { parseCaCertificate } from "./caCertificate";
import { HOST_NAME_RULE, isHostName } from "./hostName";
import { checkKeyName, readSecretKey } from "../signing/signingKey";

/** The retention modes: the closure-safe GC, or the chapter's age-based lifecycle expiry. */
export const RETENTIONS = ["gc", "lifecycle"] as const;
export type Retention = (typeof RETENTIONS)[number];

/** Who may read the cache: anyone (anonymous GET), or only hosts with the reader's credentials or a proxy token. */
export const ACCESS_MODES = ["public", "private"] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];

/** The read proxy's port when nix-cache:proxyUrl is unset (lib/proxy, `npm run proxy`, the proxy's NixOS module). */
export const DEFAULT_PROXY_PORT = 8480;

/** The configuration namespace (the project name in Pulumi.yaml). */
export const CONFIG_NAMESPACE = "nix-cache";

/** The validated settings the program builds the cache from. */
export interface CacheSettings {
  /** The MinIO S3 API URL the deployment talks to (scheme://host[:port], no path). */
  endpoint: string;
  /** The URL Nix clients use to reach MinIO (default: endpoint). */
  publicUrl: string;
  /** S3 region MinIO answers for (default us-east-1, MinIO's own default). */
  region: string;
  bucket: string;
  /** The builder's MinIO user: nix-cache:builderUser, else derived from the bucket (defaultUserNames). */
  builderUser: string;
  /**
   * builderUser and gcUser were not set, so they are defaults: a stack that already has users keeps their
   * names (the user resources keep what their state holds), so an upgrade never renames a user.
   */
  builderUserDefaulted: boolean;
  gcUserDefaulted: boolean;
  /**
   * Existing Nix secret keys (`NAME:base64(seed ‖ pub)`, the chapter's secret.key) used instead of generated
   * ones for their names (keyName or one of previousKeyNames). Secret: never shown in plain text.
   */
  importKeys: string[];
  /**
   * The existing password of the builder user, kept instead of a generated one (a takeover from the chapter:
   * the builder's ~/.aws/credentials keeps working). Secret. Undefined: a generated password.
   */
  builderPassword?: string;
  /** The active signing key's name: it signs, and hosts trust it. */
  keyName: string;
  /** Older keys kept alive during a rotation: still trusted by hosts and still signing; distinct names. */
  previousKeyNames: string[];
  storeDir: string;
  wantMassQuery: boolean;
  priority: number;
  /**
   * How old objects go: "gc" (the closure-safe garbage collector, `npm run gc`; the bucket's lifecycle expires
   * nothing) or "lifecycle" (an age rule that expires each object on its own after expireDays, which can break
   * closures).
   */
  retention: Retention;
  /** retention=gc: the GC keeps the closures of paths pushed or refreshed within this many days. */
  retainDays: number;
  /** retention=lifecycle only: days after which the lifecycle rule expires cached objects (never nix-cache-info). */
  expireDays: number;
  /** The GC's MinIO user (list, read, delete; writes only its gc/ bookkeeping keys). */
  gcUser: string;
  anonymousList: boolean;
  /**
   * "public": anyone may download (anonymous GetObject). "private": no anonymous access at all; hosts read with
   * the reader user's credentials (S3-capable Nix) or through the read proxy with a per-host token.
   */
  access: AccessMode;
  /** access=private: the reading MinIO user (GetObject, GetBucketLocation, ListBucket on the bucket only). */
  readerUser: string;
  /** access=private: the hosts that get their own proxy token, sorted, each once. */
  readerHosts: string[];
  /** access=private: the URL hosts reach the read proxy at (scheme://host:port, no trailing '/'). */
  proxyUrl: string;
  forceDestroy: boolean;
  /**
   * nix-cache:adopt: take over a bucket, user or policy this stack did not make (a cache made by hand); the
   * preview then shows the takeover's plan (lib/minio/takeover.ts).
   */
  adopt: boolean;
  /**
   * The PEM of the CA (or bundle) that signed MinIO's certificate, normalized; undefined when unset (the
   * system's trust store is used).
   */
  caCertificate?: string;
}

/**
 * Raw config values as strings, keyed by the names without namespace; undefined where unset.
 * `allowBucketRename`, `allowKeyDrop` and `adopt` are checked here too, but only the providers act on them (see
 * bucketRenameRefusal, lib/signing/keyRing.ts keyChangeRefusal, lib/minio/ownership.ts claimRefusal).
 */
export type RawSettings = Partial<
  Record<Exclude<keyof CacheSettings, "builderUserDefaulted" | "gcUserDefaulted"> | "allowBucketRename" | "allowKeyDrop" | "adopt", string>
>;

/** The settings that hold secrets: read as secrets, and never echoed in an error. */
export const SECRET_SETTING_KEYS: readonly (keyof RawSettings)[] = ["importKeys", "builderPassword"];

/** Every setting the program reads from the stack config (besides the admin credentials). */
export const SETTING_KEYS: readonly (keyof RawSettings)[] = [
  "endpoint", "publicUrl", "region", "bucket", "builderUser", "keyName", "previousKeyNames", "storeDir", "wantMassQuery", "priority",
  "retention", "retainDays", "expireDays", "gcUser", "anonymousList", "forceDestroy", "allowBucketRename", "caCertificate",
  "allowKeyDrop", "adopt", "importKeys", "builderPassword", "access", "readerUser", "readerHosts", "proxyUrl",
];

export const DEFAULTS = {
  region: "us-east-1",
  bucket: "nix-cache",
  builderUser: "nixbuilder",
  keyName: "s3.homelab.local-1",
  previousKeyNames: [] as string[],
  storeDir: "/nix/store",
  wantMassQuery: true,
  priority: 40,
  retention: "gc" as Retention,
  retainDays: 7,
  expireDays: 7,
  gcUser: "nixgc",
  readerUser: "nixreader",
  access: "public" as AccessMode,
  anonymousList: false,
  forceDestroy: false,
} as const;

/** Thrown with every problem found, one line each. */
export class SettingsError extends Error {
  /**
   * Marks this as a Pulumi RunError (the SDK checks this field, not the class): Pulumi then prints only the
   * message, not a stack trace, because the message says all the user needs.
   */
  readonly __pulumiRunError = true;

  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "SettingsError";
  }
}

/**
 * The users' names when nix-cache:builderUser and nix-cache:gcUser are unset: the chapter's nixbuilder (and
 * nixgc) for the default bucket, else BUCKET-builder and BUCKET-gc, so a second cache on the same MinIO needs
 * only its own nix-cache:bucket. A bucket name too long for that (MinIO user names are at most 20 characters)
 * keeps the chapter's names, as every version did: a second stack is then told, by the ownership check, to set
 * the names itself.
 */
export function defaultUserNames(bucket: string): { builderUser: string; gcUser: string; readerUser: string } {
  const derived = { builderUser: `${bucket}-builder`, gcUser: `${bucket}-gc`, readerUser: `${bucket}-reader` };
  if (bucket === DEFAULTS.bucket || checkUserName(derived.builderUser) || checkUserName(derived.gcUser) || checkUserName(derived.readerUser)) {
    return { builderUser: DEFAULTS.builderUser, gcUser: DEFAULTS.gcUser, readerUser: DEFAULTS.readerUser };
  }
  return derived;
}

/** A host name for a proxy token (lib/config/hostName.ts); a problem text, or undefined when it is one. */
export function checkHostName(name: string): string | undefined {
  return isHostName(name) ? undefined : HOST_NAME_RULE;
}

/** S3 bucket naming rules (the ones MinIO enforces, plus AWS's stricter ones so a cache can move). */
export function checkBucketName(name: string): string | undefined {
  const allowed = "3 to 63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, not an IP address";
  if (name.length < 3 || name.length > 63) return allowed;
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) return allowed;
  if (name.includes("..") || name.includes(".-") || name.includes("-.")) return allowed;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return allowed;
  return undefined;
}

/** MinIO access keys are at least 3 characters; we also keep them usable as an AWS profile and URL value. */
export function checkUserName(name: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{2,19}$/.test(name)) {
    return "3 to 20 characters of letters, digits, '.', '_' and '-', starting with a letter or digit";
  }
  return undefined;
}

function checkBaseUrl(value: string): string | undefined {
  const allowed = "an http:// or https:// URL of the MinIO S3 API with no path, e.g. https://s3.homelab.local or http://127.0.0.1:9000";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return allowed;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return allowed;
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username || url.password) {
    return allowed;
  }
  return undefined;
}

/** The value as an error may show it: a password in a URL (https://user:pw@host) is masked. */
function withoutPassword(value: string | undefined): string | undefined {
  if (value === undefined) return value;
  try {
    const url = new URL(value);
    if (url.password) {
      url.password = "***";
      return url.toString();
    }
  } catch {
    // not a URL: nothing to mask
  }
  return value;
}

/** Parses and validates raw settings; throws one SettingsError naming every bad setting. */
export function parseSettings(raw: RawSettings): CacheSettings {
  const problems: string[] = [];
  const key = (name: string) => `${CONFIG_NAMESPACE}:${name}`;
  const bad = (name: string, value: string | undefined, allowed: string) =>
    problems.push(`${key(name)} is ${JSON.stringify(withoutPassword(value))}: allowed is ${allowed}`);

  const text = (name: keyof RawSettings, fallback?: string): string => {
    const v = raw[name];
    return v === undefined || v === "" ? (fallback ?? "") : v;
  };
  const bool = (name: keyof RawSettings, fallback: boolean): boolean => {
    const v = raw[name];
    if (v === undefined || v === "") return fallback;
    if (v === "true" || v === "false") return v === "true";
    bad(name, v, "true or false");
    return fallback;
  };
  const int = (name: keyof RawSettings, fallback: number, min: number): number => {
    const v = raw[name];
    if (v === undefined || v === "") return fallback;
    if (!/^-?\d+$/.test(v.trim()) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
      bad(name, v, `a whole number ≥ ${min}`);
      return fallback;
    }
    return Number(v);
  };

  const endpoint = text("endpoint").replace(/\/+$/, "");
  if (!raw.endpoint) {
    problems.push(`${key("endpoint")} is not set: allowed is ${checkBaseUrl("") ?? ""} (pulumi config set ${key("endpoint")} URL)`);
  } else {
    const p = checkBaseUrl(endpoint);
    if (p) bad("endpoint", raw.endpoint, p);
  }
  const publicUrl = text("publicUrl", endpoint).replace(/\/+$/, "");
  if (raw.publicUrl !== undefined && raw.publicUrl !== "") {
    const p = checkBaseUrl(publicUrl);
    if (p) bad("publicUrl", raw.publicUrl, p);
  }

  const region = text("region", DEFAULTS.region);
  if (!/^[a-z0-9-]{1,32}$/.test(region)) bad("region", raw.region, "an S3 region name such as us-east-1");

  // Names of the bucket and of the key: a value set to "" is a mistake, not a request for the default (the
  // default would silently own a different bucket).
  const bucket = raw.bucket ?? DEFAULTS.bucket;
  const bucketProblem = checkBucketName(bucket);
  if (bucketProblem) bad("bucket", raw.bucket, bucketProblem);

  const derived = defaultUserNames(bucketProblem ? DEFAULTS.bucket : bucket);
  // Unset and "" are the same here: Pulumi.yaml can only say "no default" for them with an empty one.
  const builderUserSet = raw.builderUser !== undefined && raw.builderUser !== "";
  const gcUserSet = raw.gcUser !== undefined && raw.gcUser !== "";
  const builderUser = builderUserSet ? (raw.builderUser ?? "") : derived.builderUser;
  const userProblem = checkUserName(builderUser);
  if (userProblem) bad("builderUser", raw.builderUser, userProblem);

  // The GC's own identity: a second user, so the builder never holds DeleteObject.
  const gcUser = gcUserSet ? (raw.gcUser ?? "") : derived.gcUser;
  const gcUserProblem = checkUserName(gcUser);
  if (gcUserProblem) bad("gcUser", raw.gcUser, gcUserProblem);
  else if (!userProblem && gcUser === builderUser) {
    bad("gcUser", raw.gcUser ?? gcUser, `a user name other than ${key("builderUser")} (${JSON.stringify(builderUser)}): the builder must not be able to delete`);
  }

  const accessText = text("access", DEFAULTS.access);
  const access = ACCESS_MODES.find((a) => a === accessText) ?? DEFAULTS.access;
  if (access !== accessText) bad("access", raw.access, ACCESS_MODES.map((a) => JSON.stringify(a)).join(" or "));
  const readerUserSet = raw.readerUser !== undefined && raw.readerUser !== "";
  const readerUser = readerUserSet ? (raw.readerUser ?? "") : derived.readerUser;
  const readerUserProblem = checkUserName(readerUser);
  if (readerUserProblem) bad("readerUser", raw.readerUser, readerUserProblem);
  else if ([builderUser, gcUser].includes(readerUser)) {
    bad("readerUser", raw.readerUser ?? readerUser, `a user name other than ${key("builderUser")} and ${key("gcUser")}: the reader must not be able to write or delete`);
  }
  const readerHosts = parseReaderHosts(raw.readerHosts, access, problems);
  const proxyUrl = parseProxyUrl(raw.proxyUrl, publicUrl, access, problems);

  const retentionText = text("retention", DEFAULTS.retention);
  const retention = RETENTIONS.find((r) => r === retentionText) ?? DEFAULTS.retention;
  if (retention !== retentionText) bad("retention", raw.retention, RETENTIONS.map((r) => JSON.stringify(r)).join(" or "));

  const keyName = raw.keyName ?? DEFAULTS.keyName;
  const keyProblem = checkKeyName(keyName);
  if (keyProblem) bad("keyName", raw.keyName, `a Nix key name that ${keyProblem}, e.g. s3.homelab.local-1`);

  const previousKeyNames = parsePreviousKeyNames(raw.previousKeyNames, keyName, problems);
  const importKeys = parseImportKeys(raw.importKeys, keyProblem ? [] : [keyName, ...previousKeyNames], problems);
  const builderPassword = parseBuilderPassword(raw.builderPassword, problems);

  const storeDir = text("storeDir", DEFAULTS.storeDir);
  if (!/^\/[^\s]*[^/\s]$/.test(storeDir)) bad("storeDir", raw.storeDir, "an absolute path with no trailing '/' or white space, e.g. /nix/store");

  // A CA for MinIO's certificate: PEM certificates only, and only where something speaks https.
  let caCertificate: string | undefined;
  if (raw.caCertificate !== undefined && raw.caCertificate.trim() !== "") {
    const parsed = parseCaCertificate(raw.caCertificate);
    if (!parsed.ok) problems.push(parsed.problem);
    else if (![endpoint, publicUrl].some((u) => u.startsWith("https://"))) {
      problems.push(
        `${key("caCertificate")} is set but ${key("endpoint")} and ${key("publicUrl")} are http:// URLs, which use no certificate: ` +
          `allowed is an https:// endpoint (or publicUrl) served with a certificate from that CA, or no ${key("caCertificate")} ` +
          `(pulumi config rm ${key("caCertificate")})`,
      );
    } else caCertificate = parsed.pem;
  }

  const settings: CacheSettings = {
    endpoint,
    publicUrl,
    region,
    bucket,
    builderUser,
    builderUserDefaulted: !builderUserSet,
    gcUserDefaulted: !gcUserSet,
    importKeys,
    ...(builderPassword === undefined ? {} : { builderPassword }),
    keyName,
    previousKeyNames,
    storeDir,
    wantMassQuery: bool("wantMassQuery", DEFAULTS.wantMassQuery),
    priority: int("priority", DEFAULTS.priority, 0),
    retention,
    retainDays: int("retainDays", DEFAULTS.retainDays, 1),
    expireDays: int("expireDays", DEFAULTS.expireDays, 1),
    gcUser,
    anonymousList: bool("anonymousList", DEFAULTS.anonymousList),
    access,
    readerUser,
    readerHosts,
    proxyUrl,
    forceDestroy: bool("forceDestroy", DEFAULTS.forceDestroy),
    adopt: bool("adopt", false),
    caCertificate,
  };
  bool("allowBucketRename", false);
  bool("allowKeyDrop", false);
  if (problems.length > 0) throw new SettingsError(problems);
  return settings;
}

/** A list setting as Pulumi hands it over (its JSON text), when that is a list of text values; else undefined. */
function textList(value: string): string[] | undefined {
  let list: unknown;
  try {
    list = JSON.parse(value);
  } catch {
    return undefined;
  }
  return Array.isArray(list) && list.every((item): item is string => typeof item === "string") ? list : undefined;
}

/**
 * nix-cache:previousKeyNames: a list of Nix key names (what Pulumi hands over for a list setting is its JSON
 * text; unset or "" is the empty list). Nix keys trusted keys by name, so every name must differ from the
 * others and from nix-cache:keyName: a second key under a name hosts already trust would be ignored.
 */
function parsePreviousKeyNames(value: string | undefined, keyName: string, problems: string[]): string[] {
  if (value === undefined || value.trim() === "") return [];
  const setting = `${CONFIG_NAMESPACE}:previousKeyNames`;
  const allowed =
    `a list of Nix key names (no ':' or white space), each different from the others and from ${CONFIG_NAMESPACE}:keyName, ` +
    `e.g. pulumi config set --path '${setting}[0]' s3.homelab.local-1`;
  const list = textList(value);
  if (list === undefined) {
    problems.push(`${setting} is ${JSON.stringify(value)}: allowed is ${allowed}`);
    return [];
  }
  const before = problems.length;
  list.forEach((name, i) => {
    const problem = checkKeyName(name);
    if (problem) problems.push(`${setting}[${i}] is ${JSON.stringify(name)}: it ${problem}; allowed is ${allowed}`);
    else if (name === keyName) {
      problems.push(`${setting}[${i}] is ${JSON.stringify(name)}, the active ${CONFIG_NAMESPACE}:keyName too: allowed is ${allowed}`);
    } else if (list.indexOf(name) !== i) {
      problems.push(`${setting}[${i}] is ${JSON.stringify(name)}, listed twice: allowed is ${allowed}`);
    }
  });
  return problems.length === before ? list : [];
}

/**
 * nix-cache:importKeys: existing Nix secret keys, a list (`pulumi config set --secret --path
 * 'nix-cache:importKeys[0]' "$(cat ~/.config/nix/secret.key)"`) or one key as plain text. Each must be a Nix
 * secret key whose seed and public half belong together, for a name some setting uses (`keyNames`: keyName and
 * previousKeyNames), each name once. Problems name the entry and the key's name, never the key itself.
 */
function parseImportKeys(value: string | undefined, keyNames: readonly string[], problems: string[]): string[] {
  if (value === undefined || value.trim() === "") return [];
  const setting = `${CONFIG_NAMESPACE}:importKeys`;
  const howTo = `pulumi config set --secret --path '${setting}[0]' "$(cat ~/.config/nix/secret.key)"`;
  const allowed =
    `a list of Nix secret keys as \`nix key generate-secret\` writes them (NAME:base64 of the 32-byte seed and the 32-byte public key), ` +
    `each for the name in ${CONFIG_NAMESPACE}:keyName or in ${CONFIG_NAMESPACE}:previousKeyNames, each name once, e.g. ${howTo}`;
  let list: unknown;
  if (value.trim().startsWith("[")) {
    try {
      list = JSON.parse(value);
    } catch {
      list = undefined;
    }
  } else list = [value];
  if (!Array.isArray(list) || !list.every((k): k is string => typeof k === "string")) {
    problems.push(`${setting} is not a list of text values (its value is secret and not shown): allowed is ${allowed}`);
    return [];
  }
  const before = problems.length;
  const names: string[] = [];
  list.forEach((text, i) => {
    const entry = `${setting}[${i}]`;
    const parsed = readSecretKey(text.trim());
    if (!parsed.ok) {
      const named = parsed.name ? ` (key name ${JSON.stringify(parsed.name)})` : "";
      problems.push(`${entry}${named} ${parsed.problem} (the value is secret and not shown): allowed is ${allowed}`);
      return;
    }
    if (!keyNames.includes(parsed.name)) {
      problems.push(
        `${entry} is the key ${JSON.stringify(parsed.name)}, a name no setting uses (${CONFIG_NAMESPACE}:keyName is ` +
          `${JSON.stringify(keyNames[0] ?? "")}${keyNames.length > 1 ? `, ${CONFIG_NAMESPACE}:previousKeyNames ${JSON.stringify(keyNames.slice(1))}` : ""}): ` +
          `allowed is ${allowed}; to make it the active key: pulumi config set ${CONFIG_NAMESPACE}:keyName ${parsed.name}`,
      );
      return;
    }
    if (names.includes(parsed.name)) {
      problems.push(`${entry} is a second key named ${JSON.stringify(parsed.name)}: allowed is ${allowed}`);
      return;
    }
    names.push(parsed.name);
  });
  return problems.length === before ? list.map((k) => k.trim()) : [];
}

/**
 * nix-cache:readerHosts: the hosts that each get their own proxy token (a list; unset or "" is none). Only a
 * private cache has tokens: set with access=public it is refused rather than ignored.
 */
function parseReaderHosts(value: string | undefined, access: AccessMode, problems: string[]): string[] {
  if (value === undefined || value.trim() === "" || value.trim() === "[]") return [];
  const setting = `${CONFIG_NAMESPACE}:readerHosts`;
  const allowed = `a list of distinct host names, e.g. pulumi config set --path '${setting}[0]' laptop`;
  const list = textList(value);
  if (list === undefined) {
    problems.push(`${setting} is ${JSON.stringify(value)}: allowed is ${allowed}`);
    return [];
  }
  if (access !== "private") {
    problems.push(
      `${setting} is set but ${CONFIG_NAMESPACE}:access is "public", where anyone may read and no token is needed: ` +
        `allowed is ${CONFIG_NAMESPACE}:access "private" (pulumi config set ${CONFIG_NAMESPACE}:access private), or no ${setting} (pulumi config rm ${setting})`,
    );
    return [];
  }
  const before = problems.length;
  list.forEach((host, i) => {
    const problem = checkHostName(host);
    if (problem) problems.push(`${setting}[${i}] is ${JSON.stringify(host)}: allowed is ${problem}`);
    else if (list.indexOf(host) !== i) problems.push(`${setting}[${i}] is ${JSON.stringify(host)}, listed twice: allowed is ${allowed}`);
  });
  return problems.length === before ? [...list].sort() : [];
}

/** The read proxy's URL when nix-cache:proxyUrl is unset: publicUrl's scheme and host, on DEFAULT_PROXY_PORT. */
export function defaultProxyUrl(publicUrl: string): string {
  const url = new URL(publicUrl);
  // URL.hostname keeps an IPv6 address's brackets.
  return `${url.protocol}//${url.hostname}:${DEFAULT_PROXY_PORT}`;
}

/** nix-cache:proxyUrl: where hosts reach the read proxy; default publicUrl's scheme and host on DEFAULT_PROXY_PORT. */
function parseProxyUrl(value: string | undefined, publicUrl: string, access: AccessMode, problems: string[]): string {
  const setting = `${CONFIG_NAMESPACE}:proxyUrl`;
  if (value === undefined || value === "") {
    try {
      return defaultProxyUrl(publicUrl);
    } catch {
      return ""; // publicUrl is reported on its own
    }
  }
  const url = value.replace(/\/+$/, "");
  const problem = checkBaseUrl(url);
  if (problem) problems.push(`${setting} is ${JSON.stringify(value)}: allowed is an http:// or https:// URL of the read proxy with no path, e.g. https://cache.homelab.local:${DEFAULT_PROXY_PORT}`);
  else if (access !== "private") {
    problems.push(`${setting} is set but ${CONFIG_NAMESPACE}:access is "public", which has no proxy: allowed is ${CONFIG_NAMESPACE}:access "private", or no ${setting}`);
  }
  return url;
}

/**
 * nix-cache:builderPassword: the builder user's existing password, as MinIO takes a secret key (8 to 40
 * characters) and as an AWS credentials file and a URL carry it (no white space). Never echoed.
 */
function parseBuilderPassword(value: string | undefined, problems: string[]): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (value.length < 8 || value.length > 40 || /\s/.test(value)) {
    problems.push(
      `${CONFIG_NAMESPACE}:builderPassword is ${value.length} characters${/\s/.test(value) ? " with white space" : ""} (the value is secret and not shown): ` +
        `allowed is the builder user's current MinIO password, 8 to 40 characters without white space ` +
        `(pulumi config set --secret ${CONFIG_NAMESPACE}:builderPassword PASSWORD), or unset for a generated one`,
    );
    return undefined;
  }
  return value;
}

/** Reads nix-cache:allowKeyDrop (unset or "" is false); a problem instead of a throw, as readAllowBucketRename. */
export function readAllowKeyDrop(value: string | undefined): { allowed: boolean; problem?: string } {
  if (value === undefined || value === "" || value === "false") return { allowed: false };
  if (value === "true") return { allowed: true };
  return { allowed: false, problem: `${CONFIG_NAMESPACE}:allowKeyDrop is ${JSON.stringify(value)}: allowed is true or false` };
}

/** The config key that lets a change of nix-cache:bucket go ahead. */
export const ALLOW_BUCKET_RENAME_KEY = `${CONFIG_NAMESPACE}:allowBucketRename`;

/**
 * Reads nix-cache:allowBucketRename (unset or "" is false). Returns a problem instead of throwing: the
 * bucket provider calls this, and an error class does not survive Pulumi's serialization of provider code.
 */
export function readAllowBucketRename(value: string | undefined): { allowed: boolean; problem?: string } {
  if (value === undefined || value === "" || value === "false") return { allowed: false };
  if (value === "true") return { allowed: true };
  return { allowed: false, problem: `${ALLOW_BUCKET_RENAME_KEY} is ${JSON.stringify(value)}: allowed is true or false` };
}

/**
 * Renaming the bucket: Pulumi would replace it, which leaves the cache (every cached object, and the URL
 * every host uses) behind. So a rename is refused unless the user opts in; with the opt-in the new bucket
 * becomes the cache and the old one is left exactly as it is (objects, nix-cache-info, anonymous read,
 * expiry rule), no longer managed by Pulumi: nothing is lost, and hosts not yet switched keep working.
 * Returns the refusal to show, or undefined when the change may go ahead.
 */
export function bucketRenameRefusal(oldBucket: string, newBucket: string, allowed: boolean): string | undefined {
  if (oldBucket === newBucket || allowed) return undefined;
  return (
    `nix-cache:bucket changed from '${oldBucket}' to '${newBucket}'; nothing was changed. ` +
    `Renaming would leave the cache in '${oldBucket}' behind (its objects and the URL hosts use). ` +
    `To keep the cache: pulumi config set nix-cache:bucket ${oldBucket}. ` +
    `To move to '${newBucket}' and keep '${oldBucket}' as it is (unmanaged, nothing deleted; remove it yourself ` +
    `once no host uses it): pulumi config set ${ALLOW_BUCKET_RENAME_KEY} true, then pulumi up.`
  );
}
