// The checks of `npm run verify`: what a Nix client and the builder meet when they use the cache, judged from
// answers that a CacheProbe fetches (the CLI's probe makes real requests; unit tests pass canned answers).
// Each check gives one PASS/FAIL line and, on failure, the fix.
import { parseCacheInfo, renderCacheInfo } from "../config/cacheInfo";
import { isQuorumLoss, QUORUM_FIX, quorumLoss, WRITE_QUORUM_LOST } from "../minio/failures";
import { checkClosures, GcStore } from "../gc/run";
import { ExpiryRule, readExpiryRules, wouldExpire } from "../minio/lifecycle";
import { parseS3StoreUrl } from "../s3/pushTarget";
import { AccessMode, CacheSettings } from "../config/settings";
import { parseErrorBody } from "../s3/xml";
import { NarinfoError, parseNarinfo, verifySignatures } from "../signing/narinfo";
import { publicKeyOf } from "../signing/signingKey";

/** The stack outputs verify reads. */
export interface VerifyOutputs {
  substituterUrl: string;
  publicKey: string;
  secretKey: string;
  pushUrl: string;
}

export type CheckName =
  | "signing-key"
  | "tls-certificate"
  | "cache-info"
  | "narinfo-miss"
  | "anonymous-read"
  | "reader-read"
  | "anonymous-list"
  | "anonymous-write"
  | "reader-write"
  | "builder-upload"
  | "anonymous-delete"
  | "reader-delete"
  | "builder-delete"
  | "lifecycle"
  | "narinfo-signatures"
  | "closures"
  | "proxy";

/** Every check, in the order they run and print; a run does those of its cache's access mode (checksFor). */
export const CHECKS: readonly CheckName[] = [
  "signing-key",
  "tls-certificate",
  "cache-info",
  "narinfo-miss",
  "anonymous-read",
  "reader-read",
  "anonymous-list",
  "anonymous-write",
  "reader-write",
  "builder-upload",
  "anonymous-delete",
  "reader-delete",
  "builder-delete",
  "lifecycle",
  "narinfo-signatures",
  "closures",
  "proxy",
];

/** Checks of a public cache only: Nix clients read it anonymously. */
const PUBLIC_ONLY: readonly CheckName[] = ["cache-info", "narinfo-miss"];
/** Checks of a private cache only: anonymous reads refused, the reader's rights, the proxy. */
const PRIVATE_ONLY: readonly CheckName[] = ["anonymous-read", "reader-read", "reader-write", "reader-delete", "proxy"];

/**
 * The checks a run does, in order. A public cache is read anonymously (cache-info, narinfo-miss); a private one
 * must refuse anonymous reads and is read as the reader, and through the read proxy when verify is given one
 * (--proxy: the proxy may not run where verify runs).
 */
export function checksFor(access: AccessMode, proxy: boolean): CheckName[] {
  return CHECKS.filter((c) =>
    access === "private" ? !PUBLIC_ONLY.includes(c) && (c !== "proxy" || proxy) : !PRIVATE_ONLY.includes(c),
  );
}

export interface CheckResult {
  name: CheckName;
  ok: boolean;
  /** What was seen, one line. */
  detail: string;
  /** What to do about a failure. */
  fix?: string;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** The outcome of an S3 call: success, or MinIO's error code (AccessDenied, InvalidAccessKeyId, …). */
export type S3Outcome = { ok: true } | { ok: false; code: string; message: string };

export interface TlsAnswer {
  /** The chain verified against the trusted CAs and the certificate names the host. */
  authorized: boolean;
  /** Node's verification error code when not authorized (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  error?: string;
  /** Issuer and subject of the server's certificate, as `CN=…` text. */
  issuer?: string;
  subject?: string;
  /** The CA bundle the check trusted (Nix's own choice of file where one is set, else Node's roots). */
  caSource: string;
}

/** An S3 answer to a signed request: the status, the body (S3's error XML on a refusal) and S3's error code. */
export interface S3Answer extends HttpAnswer {
  /** S3's <Code> (AccessDenied, NoSuchKey, InvalidAccessKeyId, …) when the request failed. */
  code?: string;
}

/** The network side of the checks. Methods throw only when the server cannot be reached at all. */
export interface CacheProbe {
  /** An unauthenticated request, as any Nix client makes it. */
  anonymous(method: "GET" | "HEAD" | "PUT" | "DELETE", url: string, body?: string): Promise<HttpAnswer>;
  builderPut(key: string, body: string): Promise<S3Outcome>;
  builderDelete(key: string): Promise<S3Outcome>;
  adminPut(key: string, body: string): Promise<S3Outcome>;
  adminDelete(key: string): Promise<S3Outcome>;
  /** The bucket's lifecycle configuration as the MinIO SDK parses it; undefined when there is none. */
  adminLifecycle(): Promise<unknown | undefined>;
  /** Every object key of the bucket, listed as the admin. */
  adminList(): Promise<string[]>;
  /** The bucket read as the admin (listing, GET, HEAD), for the closure check. */
  adminStore(): ObjectStore;
  tls(url: string): Promise<TlsAnswer>;
}

/** The private cache's side of the probe (access=private). Methods throw only when the server cannot be reached. */
export interface ReaderProbe {
  /** A SigV4-signed GET of `key` as the reader, at the endpoint hosts use (pushUrl's). */
  readerGet(key: string): Promise<S3Answer>;
  readerPut(key: string, body: string): Promise<S3Outcome>;
  readerDelete(key: string): Promise<S3Outcome>;
  /** A GET at the read proxy, with HTTP Basic credentials or without any. */
  proxyGet(url: string, basic?: { user: string; password: string }): Promise<HttpAnswer>;
}

const isReaderProbe = (probe: CacheProbe): probe is CacheProbe & ReaderProbe =>
  typeof (probe as Partial<ReaderProbe>).readerGet === "function";

/** What the closure check reads the bucket through (lib/s3/client.ts S3Rest has this shape). */
export type ObjectStore = Pick<GcStore, "list" | "get" | "head">;

const REFRESH = "run `pulumi up --refresh` on this stack: it puts back what the program declares";
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** publicKey must be the public half of secretKey, or every client refuses what the builder signs. */
export function checkSigningKey(outputs: VerifyOutputs): CheckResult {
  const name = "signing-key";
  let derived: string;
  try {
    derived = publicKeyOf(outputs.secretKey);
  } catch (err) {
    return { name, ok: false, detail: `secretKey is not a Nix secret key (${errorText(err)})`, fix: REFRESH };
  }
  if (derived !== outputs.publicKey) {
    return {
      name,
      ok: false,
      detail: `publicKey ${outputs.publicKey} is not the public half of secretKey (that is ${derived})`,
      fix: `${REFRESH}; then give clients the new publicKey (nixosModule output) and the builder the new secretKey`,
    };
  }
  return { name, ok: true, detail: `publicKey ${outputs.publicKey} is the public half of secretKey` };
}

/** Judges one TLS answer for `url`. */
export function judgeTls(url: string, answer: TlsAnswer): { ok: boolean; detail: string; fix?: string } {
  const host = new URL(url).host;
  if (answer.authorized) return { ok: true, detail: `${host}: certificate valid (issuer ${answer.issuer ?? "?"})` };
  const nameMismatch = answer.error === "ERR_TLS_CERT_ALTNAME_INVALID";
  const detail =
    `${host}: certificate not accepted (${answer.error ?? "unknown error"}; subject ${answer.subject ?? "?"}, ` +
    `issuer ${answer.issuer ?? "?"}; trusted CAs from ${answer.caSource})`;
  const fix = nameMismatch
    ? `the certificate does not name ${new URL(url).hostname}: reissue it with that name in subjectAltName, or set ` +
      `nix-cache:publicUrl / nix-cache:endpoint to a name the certificate holds`
    : answer.error === "CERT_HAS_EXPIRED" || answer.error === "CERT_NOT_YET_VALID"
      ? `renew the certificate: replace public.crt and private.key in MinIO's certs directory (its --certs-dir, by ` +
        `default ~/.minio/certs) with a current one for ${new URL(url).hostname}, then restart MinIO`
      : `trust the CA that issued it (${answer.issuer ?? "see the issuer above"}): set nix-cache:caCertificate to its PEM ` +
        `(pulumi config set nix-cache:caCertificate -- "$(cat ca.pem)"), run \`pulumi up\` and give hosts the new ` +
        `nix-cache.nix (it adds the CA to security.pki.certificates); hosts that are not NixOS point Nix's ssl-cert-file ` +
        `(or NIX_SSL_CERT_FILE) at a bundle holding it`;
  return { ok: false, detail, fix };
}

/** nix-cache-info must be readable anonymously and carry the configured values. */
export function judgeCacheInfo(url: string, answer: HttpAnswer, settings: CacheSettings): CheckResult {
  const name = "cache-info";
  if (answer.status === 404) {
    return {
      name,
      ok: false,
      detail: `${url} answers 404: clients skip the cache ("does not appear to be a binary cache")`,
      fix: `${REFRESH} (it uploads nix-cache-info again)`,
    };
  }
  if (answer.status === 401 || answer.status === 403) {
    return {
      name,
      ok: false,
      detail: `${url} answers ${answer.status} to anonymous clients: the bucket policy no longer allows anonymous reads`,
      fix: `${REFRESH} (it restores the anonymous-read bucket policy)`,
    };
  }
  if (answer.status !== 200) {
    return { name, ok: false, detail: `${url} answers HTTP ${answer.status}`, fix: `check MinIO's log; then ${REFRESH}` };
  }
  const wrong = cacheInfoProblems(answer.body, settings);
  if (wrong.length > 0) {
    return { name, ok: false, detail: `nix-cache-info serves ${wrong.join(", ")}`, fix: `${REFRESH} (it rewrites nix-cache-info)` };
  }
  return { name, ok: true, detail: `served anonymously: ${cacheInfoValues(settings)}` };
}

/** How a served nix-cache-info differs from the settings, one item per wrong field; empty when it matches. */
export function cacheInfoProblems(body: string, settings: CacheSettings): string[] {
  const served = parseCacheInfo(body);
  const wanted = { storeDir: settings.storeDir, wantMassQuery: settings.wantMassQuery, priority: settings.priority };
  const wrong: string[] = [];
  if (served.storeDir !== wanted.storeDir) wrong.push(`StoreDir ${served.storeDir ?? "(none)"} (configured ${wanted.storeDir})`);
  if (served.wantMassQuery !== wanted.wantMassQuery) {
    wrong.push(`WantMassQuery ${served.wantMassQuery === undefined ? "(none)" : served.wantMassQuery ? 1 : 0} (configured ${wanted.wantMassQuery ? 1 : 0})`);
  }
  if (served.priority !== wanted.priority) wrong.push(`Priority ${served.priority ?? "(none)"} (configured ${wanted.priority})`);
  return wrong;
}

const cacheInfoValues = (settings: CacheSettings) =>
  `StoreDir ${settings.storeDir}, WantMassQuery ${settings.wantMassQuery ? 1 : 0}, Priority ${settings.priority}`;

/** Nix treats 404 and 403 for a narinfo as "not in this cache"; anything else stops it using the cache. */
export function judgeNarinfoMiss(url: string, answer: HttpAnswer): CheckResult {
  const name = "narinfo-miss";
  if (answer.status === 404 || answer.status === 403) {
    return { name, ok: true, detail: `a missing narinfo answers ${answer.status}, which Nix treats as a miss` };
  }
  return {
    name,
    ok: false,
    detail: `${url} (a narinfo that does not exist) answers HTTP ${answer.status}; Nix expects 404 or 403 and treats this as an error`,
    fix: `check what answers at the substituter URL (a proxy in front of MinIO must pass 404s through); then ${REFRESH}`,
  };
}

const denied = (status: number) => status === 401 || status === 403;

/** A private cache has no bucket policy at all; the usual way one appears is `mc anonymous set download`. */
const PRIVATE_POLICY_FIX =
  `${REFRESH} (a private cache has no bucket policy: it removes the one added by hand, e.g. by \`mc anonymous set download\`; ` +
  "`pulumi preview --refresh` shows it as drift)";

export function judgeAnonymousList(answer: HttpAnswer, allowed: boolean, access: AccessMode = "public"): CheckResult {
  const name = "anonymous-list";
  if (access === "private") {
    return denied(answer.status)
      ? { name, ok: true, detail: `anonymous LIST is denied (${answer.status})` }
      : {
          name,
          ok: false,
          detail: `anonymous LIST answers ${answer.status}: anyone can enumerate the private cache (a bucket policy allows anonymous listing)`,
          fix: PRIVATE_POLICY_FIX,
        };
  }
  if (allowed) {
    return answer.status === 200
      ? { name, ok: true, detail: "anonymous listing is allowed, as nix-cache:anonymousList asks" }
      : { name, ok: false, detail: `anonymous LIST answers ${answer.status} though nix-cache:anonymousList is true`, fix: REFRESH };
  }
  return denied(answer.status)
    ? { name, ok: true, detail: `anonymous LIST is denied (${answer.status})` }
    : {
        name,
        ok: false,
        detail: `anonymous LIST answers ${answer.status}: anyone can enumerate the cache`,
        fix: `${REFRESH} (or set nix-cache:anonymousList true if you want listing)`,
      };
}

export function judgeAnonymousWrite(answer: HttpAnswer, access: AccessMode = "public"): CheckResult {
  const name = "anonymous-write";
  return denied(answer.status)
    ? { name, ok: true, detail: `anonymous PUT is denied (${answer.status})` }
    : {
        name,
        ok: false,
        detail: `anonymous PUT answers ${answer.status}: anyone can upload to the cache (the bucket policy was widened)`,
        fix: `${access === "private" ? PRIVATE_POLICY_FIX : `${REFRESH} (it restores the read-only bucket policy)`}; then look for objects you did not push`,
      };
}

export function judgeAnonymousDelete(answer: HttpAnswer, access: AccessMode = "public"): CheckResult {
  const name = "anonymous-delete";
  return denied(answer.status)
    ? { name, ok: true, detail: `anonymous DELETE is denied (${answer.status})` }
    : {
        name,
        ok: false,
        detail: `anonymous DELETE answers ${answer.status}: anyone can delete cached objects (the bucket policy was widened)`,
        fix: access === "private" ? PRIVATE_POLICY_FIX : `${REFRESH} (it restores the read-only bucket policy)`,
      };
}

/** One anonymous request of the anonymous-read check and its answer's status. */
export interface AnonymousRead {
  /** "GET nix-cache-info", "HEAD nix-cache-info", "GET <hash>.narinfo". */
  request: string;
  status: number;
}

/**
 * A private cache refuses every anonymous read. A 200 serves the cache to anyone who reaches MinIO; a 404 (a
 * missing key) is no refusal either: the request was allowed and the answer tells what the cache holds.
 */
export function judgeAnonymousRead(reads: readonly AnonymousRead[]): CheckResult {
  const name = "anonymous-read";
  const allowed = reads.filter((r) => !denied(r.status));
  if (allowed.length === 0) {
    return { name, ok: true, detail: `anonymous ${reads.map((r) => r.request).join(", ")} are refused (${[...new Set(reads.map((r) => r.status))].join("/")})` };
  }
  const what = allowed.map((r) => `${r.request} answers ${r.status}${r.status === 404 ? " (allowed; the key just does not exist)" : ""}`).join(", ");
  return {
    name,
    ok: false,
    detail: `anonymous ${what}: the private cache is readable by anyone who can reach MinIO (a bucket policy allows anonymous reads; was \`mc anonymous set download\` run on the bucket?)`,
    fix: PRIVATE_POLICY_FIX,
  };
}

/** Why MinIO refused the reader, from S3's error code. */
function readerRefusal(code: string | undefined, reader: string, status: number): string {
  return code === "InvalidAccessKeyId"
    ? `MinIO does not accept the reader's access key ${reader} (user removed or disabled)`
    : code === "SignatureDoesNotMatch"
      ? "MinIO rejects the reader's secret key (the user's secret was changed outside Pulumi)"
      : code === "AccessDenied"
        ? `the reader (${reader}) may not read (user disabled, or its policy detached or changed)`
        : `MinIO answered HTTP ${status}${code ? ` ${code}` : ""}`;
}

const READER_FIX =
  `${REFRESH} (it re-creates and enables the reader user and re-attaches its policy); S3 hosts' credentials file comes from ` +
  "`pulumi stack output --show-secrets readerCredentials` (or `npm run host-config`), the proxy's too";

/** S3's error code of a signed request's answer: the probe's, else the one in the body's error XML. */
const codeOf = (answer: S3Answer): string | undefined => answer.code ?? parseErrorBody(answer.body).code;

/**
 * The reader reads nix-cache-info (with the configured values), and a missing narinfo is 404: S3-capable Nix
 * takes a 403 for an error, not a miss, and a 403 is what MinIO answers when the reader lacks s3:ListBucket.
 */
export function judgeReaderRead(info: S3Answer, miss: S3Answer, settings: CacheSettings, reader: string): CheckResult {
  const name = "reader-read";
  if (info.status === 404) {
    return {
      name,
      ok: false,
      detail: "nix-cache-info answers 404 to the reader: clients skip the cache (\"does not appear to be a binary cache\")",
      fix: `${REFRESH} (it uploads nix-cache-info again)`,
    };
  }
  if (info.status !== 200) {
    return { name, ok: false, detail: `signed GET of nix-cache-info as the reader: ${readerRefusal(codeOf(info), reader, info.status)}`, fix: READER_FIX };
  }
  const wrong = cacheInfoProblems(info.body, settings);
  if (wrong.length > 0) {
    return { name, ok: false, detail: `nix-cache-info serves ${wrong.join(", ")}`, fix: `${REFRESH} (it rewrites nix-cache-info)` };
  }
  if (miss.status !== 404) {
    const code = codeOf(miss);
    return {
      name,
      ok: false,
      detail:
        miss.status === 403
          ? `a missing narinfo answers 403${code ? ` ${code}` : ""} to the reader, not 404: the reader lacks s3:ListBucket, and an S3 Nix ` +
            "takes every path the cache lacks for an error instead of a miss"
          : `a missing narinfo answers HTTP ${miss.status}${code ? ` ${code}` : ""} to the reader; Nix expects 404`,
      fix: `${REFRESH} (it restores the reader's policy: GetObject, GetBucketLocation, ListBucket on the bucket)`,
    };
  }
  return { name, ok: true, detail: `the reader (${reader}) reads nix-cache-info (${cacheInfoValues(settings)}); a missing narinfo answers 404` };
}

/** The reader's policy must stay read-only: its credentials are on every S3 host and in the proxy. */
function judgeReaderChange(name: "reader-write" | "reader-delete", verb: string, outcome: S3Outcome, reader: string, done: string): CheckResult {
  if (!outcome.ok && outcome.code === "AccessDenied") return { name, ok: true, detail: `the reader (${reader}) cannot ${verb} (AccessDenied)` };
  if (outcome.ok) {
    return {
      name,
      ok: false,
      detail: `the reader (${reader}) ${done}: its policy was widened, and its credentials are on every host that reads the cache`,
      fix: `${REFRESH} (it restores the reader's read-only policy)`,
    };
  }
  return {
    name,
    ok: false,
    detail: `cannot tell whether the reader may ${verb}: MinIO answered ${outcome.code} (${outcome.message})`,
    fix: `fix reader-read first; ${REFRESH}`,
  };
}

export function judgeReaderWrite(outcome: S3Outcome, reader: string): CheckResult {
  return judgeReaderChange("reader-write", "upload", outcome, reader, "uploaded a probe object (removed again as the admin)");
}

export function judgeReaderDelete(outcome: S3Outcome, reader: string): CheckResult {
  return judgeReaderChange("reader-delete", "delete", outcome, reader, "deleted a probe object the admin had put");
}

/**
 * The read proxy answers nix-cache-info to a host's token (200, the configured values) and refuses a request
 * without credentials with 401 (the challenge curl and Nix answer with the netrc's credentials).
 */
export function judgeProxy(url: string, host: string, withToken: HttpAnswer, without: HttpAnswer, settings: CacheSettings): CheckResult {
  const name = "proxy";
  if (without.status === 200) {
    return {
      name,
      ok: false,
      detail: `${url} answers 200 without credentials: anyone who reaches the proxy reads the private cache`,
      fix: "run this project's proxy (`npm run proxy`, or the nix-cache-proxy.nix module) with the stack's tokens file; nothing else belongs at proxyUrl",
    };
  }
  if (without.status !== 401) {
    return {
      name,
      ok: false,
      detail: `${url} answers ${without.status} without credentials, not 401 with a challenge`,
      fix: "run this project's proxy (`npm run proxy`, or the nix-cache-proxy.nix module) at proxyUrl",
    };
  }
  if (denied(withToken.status)) {
    return {
      name,
      ok: false,
      detail: `${url} refuses ${host}'s token (${withToken.status}): the proxy's tokens file is older than the stack's readerTokens, or ${host} was removed from nix-cache:readerHosts`,
      fix:
        "give the proxy the stack's tokens again: `npm run host-config -- --secrets-dir …` writes nix-cache-proxy-tokens, then reload the proxy's " +
        "service (it re-reads the file on SIGHUP); `npm run proxy` reads the stack when it starts: restart it",
    };
  }
  if (withToken.status === 404) {
    return { name, ok: false, detail: `${url} answers 404 with ${host}'s token: nix-cache-info is missing`, fix: `${REFRESH} (it uploads nix-cache-info again)` };
  }
  if (withToken.status !== 200) {
    return {
      name,
      ok: false,
      detail: `${url} answers HTTP ${withToken.status} with ${host}'s token: the proxy cannot read the cache from MinIO`,
      fix: "read the proxy's log; reader-read above says whether the reader's credentials work, and the proxy must use the stack's readerCredentials",
    };
  }
  const wrong = cacheInfoProblems(withToken.body, settings);
  if (wrong.length > 0) {
    return { name, ok: false, detail: `nix-cache-info through the proxy serves ${wrong.join(", ")}`, fix: `${REFRESH} (it rewrites nix-cache-info); check that the proxy serves this stack's bucket` };
  }
  return { name, ok: true, detail: `${url}: ${host}'s token reads nix-cache-info (200), no credentials get 401` };
}

export function judgeBuilderUpload(outcome: S3Outcome, builder: string): CheckResult {
  const name = "builder-upload";
  if (outcome.ok) return { name, ok: true, detail: `the builder (${builder}) can upload` };
  const why =
    outcome.code === "InvalidAccessKeyId"
      ? `MinIO does not accept the builder's access key ${builder} (user removed or disabled)`
      : outcome.code === "SignatureDoesNotMatch"
        ? `MinIO rejects the builder's secret key (the user's secret was changed outside Pulumi)`
        : outcome.code === "AccessDenied"
          ? `the builder (${builder}) may not upload (user disabled or its policy detached or changed)`
          : `upload as the builder failed: ${outcome.code} ${outcome.message}`;
  if (isQuorumLoss(outcome.code)) {
    // A distributed MinIO with too many nodes down: nothing in the stack to repair.
    const seen = outcome.code === WRITE_QUORUM_LOST ? outcome.message : outcome.code;
    return { name, ok: false, detail: `upload as the builder failed: MinIO ${quorumLoss(outcome.code)} (${seen})`, fix: QUORUM_FIX };
  }
  return {
    name,
    ok: false,
    detail: why,
    fix: `${REFRESH} (it re-creates and enables the user and re-attaches its policy); the builder's ~/.aws/credentials come from \`pulumi stack output --show-secrets awsCredentials\``,
  };
}

export function judgeBuilderDelete(outcome: S3Outcome, builder: string): CheckResult {
  const name = "builder-delete";
  if (!outcome.ok && outcome.code === "AccessDenied") {
    return { name, ok: true, detail: `the builder (${builder}) cannot delete (AccessDenied)` };
  }
  if (outcome.ok) {
    return {
      name,
      ok: false,
      detail: `the builder (${builder}) deleted an object: a leaked builder key can wipe the cache (its policy was widened)`,
      fix: `${REFRESH} (it restores the upload-only policy)`,
    };
  }
  return {
    name,
    ok: false,
    detail: `cannot tell whether the builder may delete: MinIO answered ${outcome.code} (${outcome.message})`,
    fix: `fix builder-upload first; ${REFRESH}`,
  };
}

/** Key shapes of a Nix binary cache besides narinfos (`<hash>.narinfo`, `<hash>.ls`), which live at the root. */
const CACHE_PREFIXES = ["nar/", "log/", "realisations/", "debuginfo/"];

/** Could this rule expire a cached path's objects? Its prefix decides (any size filter still lets big NARs go). */
export function expiresCacheObjects(rule: ExpiryRule): boolean {
  if (!rule.enabled || rule.days <= 0) return false;
  const p = rule.prefix;
  if (CACHE_PREFIXES.some((c) => c.startsWith(p) || p.startsWith(c))) return true; // "" covers everything
  return /^[0-9abcdfghijklmnpqrsvwxyz]{1,32}($|\.)/.test(p); // a prefix of narinfo / .ls keys
}

/**
 * retention=gc: no rule may expire cached objects (the GC deletes, closure by closure; an expiry rule deletes
 * each object on its own and breaks closures). retention=lifecycle: the expiry rule must exist, match
 * expireDays, and never expire nix-cache-info.
 */
export function judgeLifecycle(config: unknown | undefined, settings: CacheSettings, servedCacheInfoBytes?: number): CheckResult {
  const name = "lifecycle";
  const rules = readExpiryRules(config);
  if (settings.retention === "gc") {
    const expiring = rules.filter(expiresCacheObjects);
    if (expiring.length > 0) {
      const which = expiring.map((r) => `${r.id || "(no ID)"} (${r.days} days${r.prefix ? `, prefix ${r.prefix}` : ""})`).join(", ");
      return {
        name,
        ok: false,
        detail:
          `retention is gc, but the bucket's lifecycle expires cached objects: ${which}. Each object expires on its ` +
          "own by upload age, so dependencies go before their dependents and closures break",
        fix: `${REFRESH} (in gc mode the stack declares no expiry rule, so it removes this one); \`npm run gc\` does the deleting`,
      };
    }
    return { name, ok: true, detail: "retention gc: no lifecycle rule expires cached objects (npm run gc deletes, closures stay whole)" };
  }
  const expiring = rules.filter((r) => r.enabled && r.days > 0);
  if (expiring.length === 0) {
    return {
      name,
      ok: false,
      detail: "retention is lifecycle, but the bucket has no enabled expiry rule: cached objects never expire and the disk fills up",
      fix: `${REFRESH} (it restores the expiry rule)`,
    };
  }
  const sizes = [Buffer.byteLength(renderCacheInfo(settings), "utf8")];
  if (servedCacheInfoBytes !== undefined) sizes.push(servedCacheInfoBytes);
  if (sizes.some((size) => wouldExpire(rules, "nix-cache-info", size))) {
    return {
      name,
      ok: false,
      detail: "an expiry rule also expires nix-cache-info, which turns the cache off for every client when it fires",
      fix: `${REFRESH} (it replaces the bucket's rules with ours, which keep nix-cache-info by its size)`,
    };
  }
  if (!expiring.some((r) => r.days === settings.expireDays)) {
    return {
      name,
      ok: false,
      detail: `objects expire after ${expiring.map((r) => r.days).join("/")} days, configured nix-cache:expireDays is ${settings.expireDays}`,
      fix: REFRESH,
    };
  }
  return {
    name,
    ok: true,
    detail: `retention lifecycle: objects expire after ${settings.expireDays} days (which can break closures); nix-cache-info never does`,
  };
}

/** A key no real cache object has: narinfos are 32 base-32 chars + .narinfo, NARs live under nar/. */
export function probeKey(random: string): string {
  return `nix-cache-verify-probe-${random}`;
}

/** A narinfo name that is well-formed but can never exist ('e', 'o', 't', 'u' are not Nix base-32 digits). */
export const MISSING_NARINFO = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo";

export interface VerifyInput {
  outputs: VerifyOutputs;
  settings: CacheSettings;
  builderAccessKey: string;
  /** Random text for probe object names (and the seed of the narinfo sample). */
  random: string;
  /** Check every narinfo, not a sample (verify --full). */
  full?: boolean;
  /** access=private: the reader's access key (its user name), named in the lines. */
  readerAccessKey?: string;
  /** access=private, verify --proxy: the read proxy's root URL, and the host whose token it is given. */
  proxy?: { url: string; host: string; token: string };
}

/** How many narinfos narinfo-signatures reads when not --full. */
export const NARINFO_SAMPLE = 200;

/** A PRNG in [0, 1) seeded with `seed` (xorshift32 over an FNV-1a hash of it), so a run can be repeated. */
function seededRandom(seed: string): () => number {
  let x = 2166136261;
  for (const c of seed) x = Math.imul(x ^ c.charCodeAt(0), 16777619) >>> 0;
  if (x === 0) x = 1; // xorshift stays at 0 forever
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** Up to `n` of `keys`, chosen at random (seeded with `seed`), in listing order. */
export function sampleKeys(keys: readonly string[], n: number, seed: string): string[] {
  if (keys.length <= n) return [...keys];
  const next = seededRandom(seed);
  // Partial Fisher-Yates over the indexes.
  const idx = keys.map((_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(next() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => keys[i]);
}

/** Why a narinfo text is not usable by a host trusting only `publicKey`; undefined when it is. */
export function narinfoSignatureProblem(text: string, publicKey: string): string | undefined {
  const name = publicKey.split(":")[0];
  try {
    const check = verifySignatures(parseNarinfo(text), [publicKey]);
    if (check.corrupt.length > 0) return `corrupt Sig under ${name}`;
    if (check.verified.length > 0) return undefined;
    return check.invalid.length > 0 ? `its ${name} Sig does not verify` : `no ${name} Sig`;
  } catch (err) {
    if (err instanceof NarinfoError) return err.message;
    throw err;
  }
}

/**
 * Every narinfo (a random sample of NARINFO_SAMPLE unless `full`) must carry a valid signature by the active key
 * (publicKey), or a host that trusts only that key (after a rotation is retired) refuses it. The narinfos are
 * read as a Nix client reads them: anonymously at the substituter URL, or as the reader of a private cache.
 */
export async function checkNarinfoSignatures(input: VerifyInput, probe: CacheProbe | (CacheProbe & ReaderProbe)): Promise<CheckResult> {
  const name = "narinfo-signatures";
  const keyName = input.outputs.publicKey.split(":")[0];
  const all = (await probe.adminList()).filter((k) => k.endsWith(".narinfo"));
  if (all.length === 0) return { name, ok: true, detail: "the cache holds no narinfo yet: nothing to check" };
  const chosen = input.full ? all : sampleKeys(all, NARINFO_SAMPLE, input.random);
  const scope =
    chosen.length === all.length
      ? `all ${all.length} narinfos`
      : `${chosen.length} narinfos chosen at random of ${all.length} (--full checks all)`;
  const base = input.outputs.substituterUrl.replace(/\/+$/, "");
  const reader = input.settings.access === "private" ? readerOf(probe) : undefined;
  const read = (key: string) => (reader ? reader.readerGet(key) : probe.anonymous("GET", `${base}/${key}`));
  const bad: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < chosen.length) {
      const key = chosen[next++];
      const answer = await read(key);
      const problem =
        answer.status === 404
          ? undefined // deleted since the listing (expiry): nothing a client could fetch
          : answer.status !== 200
            ? `answers HTTP ${answer.status}`
            : narinfoSignatureProblem(answer.body, input.outputs.publicKey);
      if (problem) bad.push(`${key} (${problem})`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, chosen.length) }, worker));
  if (bad.length === 0) return { name, ok: true, detail: `${scope}: each carries a valid signature by the active key ${keyName}` };
  bad.sort();
  const shown = bad.slice(0, 5).join(", ") + (bad.length > 5 ? `, … (${bad.length - 5} more)` : "");
  return {
    name,
    ok: false,
    detail: `${scope}: ${bad.length} lack a valid signature by the active key ${keyName}: ${shown}`,
    fix:
      "run `npm run resign` (it adds the active key's signature to every narinfo an older key of this stack signs); " +
      "the narinfos it refuses are signed by no key of this stack: push them again from the builder, or delete them. " +
      "Retire an older key only once this check passes with --full",
  };
}

/** How many broken closures the closures check names; the rest are counted. */
export const BROKEN_SHOWN = 10;

/** The store paths a narinfo's References line names, by hash part (`/nix/store` taken from its StorePath). */
export function referencePaths(narinfoText: string): Map<string, string> {
  const field = (n: string) => new RegExp(`^${n}: (.*)$`, "m").exec(narinfoText)?.[1]?.trim() ?? "";
  const storePath = field("StorePath");
  const storeDir = storePath.includes("/") ? storePath.slice(0, storePath.lastIndexOf("/")) : "/nix/store";
  const paths = new Map<string, string>();
  for (const ref of field("References").split(" ")) if (ref.length > 32) paths.set(ref.slice(0, 32), `${storeDir}/${ref}`);
  return paths;
}

/** One broken closure as a line: the store path and what it lacks (references by store path where known). */
export function brokenLine(storePath: string, missing: readonly string[], references: Map<string, string>): string {
  const gaps = missing.map((key) => {
    if (!key.endsWith(".narinfo")) return `its NAR ${key}`;
    const hash = key.slice(0, -".narinfo".length);
    return `the narinfo of ${references.get(hash) ?? `its reference ${hash}`} (${key})`;
  });
  return `${storePath} lacks ${gaps.join(", ")}`;
}

/**
 * The invariant the GC keeps: every narinfo has its NAR and the narinfos of all its references; else a host
 * that substitutes it fails (`nix copy --from`, `nix-store -r`) or builds from source. Checks NARINFO_SAMPLE
 * narinfos chosen at random (all with `full`), read as the admin; a missing key is confirmed with a HEAD.
 */
export async function checkClosureInvariant(input: VerifyInput, probe: CacheProbe): Promise<CheckResult> {
  const name = "closures";
  const store = probe.adminStore();
  const found = await checkClosures(store, { pick: input.full ? undefined : (hashes) => sampleKeys(hashes, NARINFO_SAMPLE, input.random) });
  if (found.narinfos === 0) return { name, ok: true, detail: "the cache holds no narinfo yet: nothing to check" };
  const scope =
    found.checked === found.narinfos
      ? `all ${found.narinfos} narinfos`
      : `${found.checked} narinfos chosen at random of ${found.narinfos} (--full checks all)`;
  if (found.broken.length === 0) return { name, ok: true, detail: `${scope}: each has its NAR and the narinfos of its references` };

  const broken = [...found.broken].sort((a, b) => a.storePath.localeCompare(b.storePath));
  const shown = broken.slice(0, BROKEN_SHOWN);
  const lines: string[] = [];
  for (const b of shown) {
    // Read again only to name the missing references by store path (the check keeps hashes).
    const got = b.missing.some((k) => k.endsWith(".narinfo")) ? await store.get(b.key).catch(() => undefined) : undefined;
    lines.push(brokenLine(b.storePath, b.missing, got ? referencePaths(got.body.toString("utf8")) : new Map()));
  }
  if (broken.length > shown.length) lines.push(`and ${broken.length - shown.length} more`);
  const lifecycle =
    input.settings.retention === "lifecycle"
      ? "; nix-cache:retention is lifecycle: its expiry rule deletes each object on its own by age, which is what breaks " +
        "closures (docs/operations.md, \"Retention: old paths go, closures stay whole\"); `pulumi config set nix-cache:retention gc` " +
        "and `pulumi up` stop it"
      : "";
  return {
    name,
    ok: false,
    detail:
      `${scope}: ${broken.length} ${broken.length === 1 ? "lacks its" : "lack their"} NAR or a reference's narinfo, so a ` +
      `host that substitutes ${broken.length === 1 ? "it" : "them"} fails or builds from source:\n${lines.join("\n")}`,
    fix:
      "run `npm run gc`: it removes broken closures (dependents first) so hosts are never served one; push the paths " +
      `again from the builder to restore them${lifecycle}`,
  };
}

/** The probe's reader side; a private cache cannot be checked without it (a caller's mistake, not a check's). */
function readerOf(probe: CacheProbe): ReaderProbe {
  if (!isReaderProbe(probe)) throw new Error("verify: a private cache needs a probe that reads as the reader (ReaderProbe)");
  return probe;
}

/**
 * Runs the checks of the cache's access mode (checksFor); probe objects are removed (as admin) before it returns.
 * A private cache needs a probe with the reader's side (ReaderProbe) and input.readerAccessKey.
 */
export async function runChecks(input: VerifyInput, probe: CacheProbe | (CacheProbe & ReaderProbe)): Promise<CheckResult[]> {
  const { outputs, settings } = input;
  const isPrivate = settings.access === "private";
  const reader = isPrivate ? readerOf(probe) : undefined;
  const readerName = input.readerAccessKey ?? settings.readerUser;
  const base = outputs.substituterUrl.replace(/\/+$/, "");
  const results: CheckResult[] = [];
  const leftovers = new Set<string>();
  const attempt = async (name: CheckName, run: () => Promise<CheckResult>) => {
    try {
      results.push(await run());
    } catch (err) {
      results.push({
        name,
        ok: false,
        detail: `could not check: ${errorText(err)}`,
        fix: "make sure MinIO is running and reachable at the stack's endpoint and publicUrl",
      });
    }
  };

  results.push(checkSigningKey(outputs));

  await attempt("tls-certificate", async () => {
    const { endpoint } = parseS3StoreUrl(outputs.pushUrl);
    const urls = [...new Set([new URL(base).origin, endpoint])].filter((u) => u.startsWith("https:"));
    if (urls.length === 0) {
      return { name: "tls-certificate", ok: true, detail: "plain http: no certificate to check (anyone on the path can read and alter traffic)" };
    }
    const judged = [];
    for (const url of urls) judged.push(judgeTls(url, await probe.tls(url)));
    const bad = judged.filter((j) => !j.ok);
    return bad.length === 0
      ? { name: "tls-certificate", ok: true, detail: judged.map((j) => j.detail).join("; ") }
      : { name: "tls-certificate", ok: false, detail: bad.map((j) => j.detail).join("; "), fix: bad.map((j) => j.fix).join("; ") };
  });

  let servedCacheInfoBytes: number | undefined;
  if (!reader) {
    await attempt("cache-info", async () => {
      const url = `${base}/nix-cache-info`;
      const answer = await probe.anonymous("GET", url);
      if (answer.status === 200) servedCacheInfoBytes = Buffer.byteLength(answer.body, "utf8");
      return judgeCacheInfo(url, answer, settings);
    });

    await attempt("narinfo-miss", async () => {
      const url = `${base}/${MISSING_NARINFO}`;
      return judgeNarinfoMiss(url, await probe.anonymous("GET", url));
    });
  } else {
    await attempt("anonymous-read", async () => {
      const reads: AnonymousRead[] = [];
      for (const [method, key] of [["GET", "nix-cache-info"], ["HEAD", "nix-cache-info"], ["GET", MISSING_NARINFO]] as const) {
        reads.push({ request: `${method} ${key}`, status: (await probe.anonymous(method, `${base}/${key}`)).status });
      }
      return judgeAnonymousRead(reads);
    });

    await attempt("reader-read", async () => {
      const info = await reader.readerGet("nix-cache-info");
      if (info.status === 200) servedCacheInfoBytes = Buffer.byteLength(info.body, "utf8");
      return judgeReaderRead(info, await reader.readerGet(MISSING_NARINFO), settings, readerName);
    });
  }

  await attempt("anonymous-list", async () =>
    judgeAnonymousList(await probe.anonymous("GET", `${base}/?list-type=2`), settings.anonymousList, settings.access),
  );

  const anonymousKey = `${probeKey(input.random)}-anonymous`;
  await attempt("anonymous-write", async () => {
    leftovers.add(anonymousKey);
    return judgeAnonymousWrite(await probe.anonymous("PUT", `${base}/${anonymousKey}`, "verify probe"), settings.access);
  });

  if (reader) {
    // A probe key, never a cache object: if the reader can write, the admin removes it below.
    const readerKey = `${probeKey(input.random)}-reader-write`;
    await attempt("reader-write", async () => {
      leftovers.add(readerKey);
      return judgeReaderWrite(await reader.readerPut(readerKey, "verify probe"), readerName);
    });
  }

  // One probe object, uploaded by the builder (or by the admin when the builder cannot), is what the
  // anonymous client and the builder then try to delete.
  const builderKey = `${probeKey(input.random)}-builder`;
  let probeUploaded = false;
  await attempt("builder-upload", async () => {
    leftovers.add(builderKey);
    const outcome = await probe.builderPut(builderKey, "verify probe");
    probeUploaded = outcome.ok;
    return judgeBuilderUpload(outcome, input.builderAccessKey);
  });
  if (!probeUploaded) {
    try {
      probeUploaded = (await probe.adminPut(builderKey, "verify probe")).ok;
    } catch {
      probeUploaded = false;
    }
  }

  await attempt("anonymous-delete", async () => {
    if (!probeUploaded) throw new Error("no probe object could be uploaded, as the builder or as the admin");
    return judgeAnonymousDelete(await probe.anonymous("DELETE", `${base}/${builderKey}`), settings.access);
  });

  if (reader) {
    // The reader tries to delete an object the admin has just put, never nix-cache-info: nothing is lost even
    // when the delete goes through.
    const doomedKey = `${probeKey(input.random)}-reader-delete`;
    await attempt("reader-delete", async () => {
      leftovers.add(doomedKey);
      const put = await probe.adminPut(doomedKey, "verify probe");
      if (!put.ok) throw new Error(`the admin could not upload the probe object the reader is to delete: ${put.code} ${put.message}`);
      return judgeReaderDelete(await reader.readerDelete(doomedKey), readerName);
    });
  }

  await attempt("builder-delete", async () => {
    if (!probeUploaded) throw new Error("no probe object could be uploaded, as the builder or as the admin");
    return judgeBuilderDelete(await probe.builderDelete(builderKey), input.builderAccessKey);
  });

  await attempt("lifecycle", async () => judgeLifecycle(await probe.adminLifecycle(), settings, servedCacheInfoBytes));

  await attempt("narinfo-signatures", () => checkNarinfoSignatures(input, probe));

  await attempt("closures", () => checkClosureInvariant(input, probe));

  const proxy = input.proxy;
  if (reader && proxy) {
    const url = `${proxy.url.replace(/\/+$/, "")}/nix-cache-info`;
    try {
      const withToken = await reader.proxyGet(url, { user: proxy.host, password: proxy.token });
      results.push(judgeProxy(url, proxy.host, withToken, await reader.proxyGet(url), settings));
    } catch (err) {
      results.push({
        name: "proxy",
        ok: false,
        detail: `could not check: ${errorText(err)}`,
        fix:
          "start the proxy (`npm run proxy -- --listen HOST:PORT`, or the nix-cache-proxy.nix module on its host) and give verify the URL " +
          "it answers at (--proxy URL); for https, its certificate must verify against the CAs verify trusts (NIX_SSL_CERT_FILE, nix-cache:caCertificate)",
      });
    }
  }

  // Clean up: the probes are ours; a missing one (never written, or deleted by a check) is fine.
  for (const key of leftovers) {
    try {
      await probe.adminDelete(key);
    } catch {
      // reported by the checks already; nothing else to do
    }
  }
  return results;
}

/** The report: one line per check (fix indented below a failure) and a summary line. */
export function formatReport(results: CheckResult[]): string {
  const width = Math.max(...CHECKS.map((c) => c.length));
  const lines: string[] = [];
  for (const r of results) {
    // A detail of several lines (closures names each broken path) continues under its first line.
    const [first, ...more] = r.detail.split("\n");
    lines.push(`${r.ok ? "PASS" : "FAIL"}  ${r.name.padEnd(width)}  ${first}`);
    for (const line of more) lines.push(`      ${" ".repeat(width)}  ${line}`);
    if (!r.ok && r.fix) lines.push(`      ${" ".repeat(width)}  fix: ${r.fix}`);
  }
  const failed = results.filter((r) => !r.ok);
  lines.push(
    failed.length === 0
      ? `verify: all ${results.length} checks passed`
      : `verify: ${failed.length} of ${results.length} checks failed: ${failed.map((r) => r.name).join(", ")}`,
  );
  return lines.join("\n");
}
