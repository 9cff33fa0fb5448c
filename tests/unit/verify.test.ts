// The verify checks judged from canned answers: a healthy cache passes every check, and each broken part
// fails the check that names it, with a fix; for a public cache and for a private one (read as the reader and
// through the read proxy). The real network side is tested in tests/integration/verify.test.ts.
import { renderCacheInfo } from "../../lib/config/cacheInfo";
import { expiryRule, lifecycleConfiguration } from "../../lib/minio/lifecycle";
import { parseSettings } from "../../lib/config/settings";
import { fingerprint, parseNarinfo } from "../../lib/signing/narinfo";
import { generateKeypair, signDetached } from "../../lib/signing/signingKey";
import {
  BROKEN_SHOWN,
  CacheProbe,
  CHECKS,
  CheckResult,
  checksFor,
  formatReport,
  HttpAnswer,
  judgeAnonymousRead,
  judgeProxy,
  judgeReaderDelete,
  judgeReaderRead,
  judgeReaderWrite,
  judgeTls,
  MISSING_NARINFO,
  NARINFO_SAMPLE,
  ObjectStore,
  ReaderProbe,
  runChecks,
  S3Answer,
  sampleKeys,
  S3Outcome,
  VerifyInput,
} from "../../lib/verify/checks";

const settings = parseSettings({ endpoint: "http://127.0.0.1:9000", priority: "30" });
/** The chapter's age rule instead of the GC (nix-cache:retention lifecycle). */
const lifecycleSettings = parseSettings({ endpoint: "http://127.0.0.1:9000", priority: "30", retention: "lifecycle" });
const keys = generateKeypair("s3.homelab.local-1");
const base = "http://127.0.0.1:9000/nix-cache";

/** An in-memory cache that answers like a healthy deployment; tests break one part at a time. */
class FakeCache implements CacheProbe {
  objects = new Map<string, string>([["nix-cache-info", renderCacheInfo(settings)]]);
  anonymousCan = { get: true, put: false, delete: false, list: false };
  builder: "ok" | "disabled" | "can-delete" = "ok";
  /** retention gc (the default): no lifecycle configuration at all. */
  lifecycle: unknown = undefined;
  tlsAnswer = { authorized: true, issuer: "CN=Test CA", subject: "CN=cache", caSource: "test" };
  unreachable = false;
  log: string[] = [];

  private reach() {
    if (this.unreachable) throw new Error("cannot reach 127.0.0.1:9000: connect ECONNREFUSED");
  }
  async anonymous(method: "GET" | "PUT" | "DELETE", url: string, body?: string): Promise<HttpAnswer> {
    this.reach();
    this.log.push(`anonymous ${method} ${url}`);
    const key = url.slice(base.length + 1);
    if (method === "GET" && key === "?list-type=2") return { status: this.anonymousCan.list ? 200 : 403, body: "" };
    if (method === "GET") {
      if (!this.anonymousCan.get) return { status: 403, body: "AccessDenied" };
      const v = this.objects.get(key);
      return v === undefined ? { status: 404, body: "NoSuchKey" } : { status: 200, body: v };
    }
    if (method === "PUT") {
      if (!this.anonymousCan.put) return { status: 403, body: "" };
      this.objects.set(key, body ?? "");
      return { status: 200, body: "" };
    }
    if (!this.anonymousCan.delete) return { status: 403, body: "" };
    this.objects.delete(key);
    return { status: 204, body: "" };
  }
  async builderPut(key: string, body: string): Promise<S3Outcome> {
    this.reach();
    if (this.builder === "disabled") return { ok: false, code: "InvalidAccessKeyId", message: "disabled" };
    this.objects.set(key, body);
    return { ok: true };
  }
  async builderDelete(key: string): Promise<S3Outcome> {
    this.reach();
    if (this.builder === "disabled") return { ok: false, code: "InvalidAccessKeyId", message: "disabled" };
    if (this.builder !== "can-delete") return { ok: false, code: "AccessDenied", message: "Access Denied." };
    this.objects.delete(key);
    return { ok: true };
  }
  async adminPut(key: string, body: string): Promise<S3Outcome> {
    this.reach();
    this.objects.set(key, body);
    return { ok: true };
  }
  async adminDelete(key: string): Promise<S3Outcome> {
    this.reach();
    this.log.push(`admin DELETE ${key}`);
    this.objects.delete(key);
    return { ok: true };
  }
  async adminLifecycle(): Promise<unknown> {
    this.reach();
    return this.lifecycle;
  }
  async adminList(): Promise<string[]> {
    this.reach();
    return [...this.objects.keys()].sort();
  }
  /** Keys the admin's listing and GETs see, each with the store's answer (HEADs confirm a missing key). */
  adminGets: string[] = [];
  adminStore(): ObjectStore {
    const objects = this.objects;
    const reach = () => this.reach();
    const gets = this.adminGets;
    const at = new Date("2026-11-27T12:00:00Z");
    return {
      async *list() {
        reach();
        for (const key of [...objects.keys()].sort()) yield { key, lastModified: at, size: objects.get(key)?.length ?? 0, etag: key };
      },
      async get(key: string) {
        reach();
        gets.push(key);
        const v = objects.get(key);
        return v === undefined ? undefined : { body: Buffer.from(v), etag: key, lastModified: at };
      },
      async head(key: string) {
        reach();
        return objects.has(key) ? { etag: key, lastModified: at } : undefined;
      },
    };
  }
  async tls() {
    return this.tlsAnswer;
  }
}

const input = (over: Partial<VerifyInput["outputs"]> = {}, s = settings): VerifyInput => ({
  outputs: {
    substituterUrl: base,
    publicKey: keys.publicKey,
    secretKey: keys.secretKey,
    pushUrl: "s3://nix-cache?profile=nixbuilder&endpoint=http://127.0.0.1:9000&region=us-east-1&compression=zstd",
    ...over,
  },
  settings: s,
  builderAccessKey: "nixbuilder",
  random: "r4nd0m",
});
const failed = (results: CheckResult[]) => results.filter((r) => !r.ok).map((r) => r.name);

describe("runChecks", () => {
  test("a healthy cache passes every check, in order, and leaves no probe object", async () => {
    const cache = new FakeCache();
    const results = await runChecks(input(), cache);
    expect(results.map((r) => r.name)).toEqual(checksFor("public", false));
    expect(failed(results)).toEqual([]);
    expect([...cache.objects.keys()]).toEqual(["nix-cache-info"]);
    expect(cache.log).toContain(`anonymous GET ${base}/${MISSING_NARINFO}`);
  });

  test.each<[string, (c: FakeCache) => void, string[]]>([
    ["bucket policy removed", (c) => { c.anonymousCan.get = false; }, ["cache-info"]],
    ["anonymous PutObject allowed", (c) => { c.anonymousCan.put = true; }, ["anonymous-write"]],
    ["anonymous DeleteObject allowed", (c) => { c.anonymousCan.delete = true; }, ["anonymous-delete"]],
    ["anonymous listing allowed", (c) => { c.anonymousCan.list = true; }, ["anonymous-list"]],
    ["builder may delete", (c) => { c.builder = "can-delete"; }, ["builder-delete"]],
    ["builder disabled", (c) => { c.builder = "disabled"; }, ["builder-upload", "builder-delete"]],
    ["nix-cache-info deleted", (c) => { c.objects.delete("nix-cache-info"); }, ["cache-info"]],
    ["nix-cache-info with other values", (c) => { c.objects.set("nix-cache-info", "StoreDir: /gnu/store\nWantMassQuery: 0\nPriority: 30\n"); }, ["cache-info"]],
    [
      "a whole-bucket expiry rule (retention gc)",
      (c) => { c.lifecycle = { Rule: [{ ID: "all", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 } }] }; },
      ["lifecycle"],
    ],
    ["a narinfo whose NAR is gone", (c) => { putPath(c, 1, narinfo(1, keys.secretKey)); c.objects.delete(narKey(1)); }, ["closures"]],
    ["an untrusted certificate on a plain-http cache (nothing to check)", (c) => { c.tlsAnswer = { ...c.tlsAnswer, authorized: false }; }, []],
  ])("%s fails exactly the checks that name it, with a fix", async (_what, breakIt, expected) => {
    const cache = new FakeCache();
    breakIt(cache);
    const results = await runChecks(input(), cache);
    expect(failed(results)).toEqual(expected);
    for (const r of results.filter((x) => !x.ok)) expect(r.fix).toMatch(/\S/);
    // Probe objects are gone however the checks went (the anonymous one too, when the PUT got through).
    expect([...cache.objects.keys()].filter((k) => k.startsWith("nix-cache-verify-probe"))).toEqual([]);
  });

  test("an untrusted certificate fails tls-certificate for an https cache", async () => {
    const cache = new FakeCache();
    cache.tlsAnswer = { authorized: false, issuer: "CN=Homelab CA", subject: "CN=s3.homelab.local", caSource: "/etc/ssl/certs/ca-certificates.crt" };
    const results = await runChecks(
      input({ substituterUrl: "https://s3.homelab.local/nix-cache", pushUrl: "s3://nix-cache?endpoint=https://s3.homelab.local" }),
      cache,
    );
    const tls = results.find((r) => r.name === "tls-certificate");
    expect(tls?.ok).toBe(false);
    expect(tls?.detail).toContain("CN=Homelab CA");
    expect(tls?.fix).toContain("set nix-cache:caCertificate to its PEM");
    expect(tls?.fix).toContain("security.pki.certificates");
  });

  test("anonymous listing passes when nix-cache:anonymousList asks for it, and fails when it is denied then", async () => {
    const listing = parseSettings({ endpoint: "http://127.0.0.1:9000", priority: "30", anonymousList: "true" });
    const cache = new FakeCache();
    expect(failed(await runChecks(input({}, listing), cache))).toEqual(["anonymous-list"]);
    cache.anonymousCan.list = true;
    expect(failed(await runChecks(input({}, listing), cache))).toEqual([]);
  });

  test("a publicKey that is not the half of secretKey fails signing-key", async () => {
    const other = generateKeypair("s3.homelab.local-1");
    const results = await runChecks(input({ publicKey: other.publicKey }), new FakeCache());
    expect(failed(results)).toEqual(["signing-key"]);
    expect(results[0].detail).not.toContain(keys.secretKey.split(":")[1]);
  });

  test("an unreachable server fails the network checks with the reason, not a crash", async () => {
    const cache = new FakeCache();
    cache.unreachable = true;
    const results = await runChecks(input(), cache);
    expect(failed(results)).toEqual(checksFor("public", false).filter((c) => c !== "signing-key" && c !== "tls-certificate"));
    expect(results.find((r) => r.name === "cache-info")?.detail).toContain("ECONNREFUSED");
  });
});

describe("judgeTls", () => {
  test("names the issuer and the CA file; a name mismatch says which name", () => {
    const untrusted = judgeTls("https://s3.homelab.local", {
      authorized: false,
      error: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      issuer: "CN=Homelab CA",
      subject: "CN=s3.homelab.local",
      caSource: "/etc/ssl/certs/ca-certificates.crt",
    });
    expect(untrusted.ok).toBe(false);
    expect(untrusted.detail).toContain("/etc/ssl/certs/ca-certificates.crt");
    expect(untrusted.fix).toContain("CN=Homelab CA");
    expect(untrusted.fix).toContain("NIX_SSL_CERT_FILE");

    const wrongName = judgeTls("https://cache.lan:9000", { authorized: false, error: "ERR_TLS_CERT_ALTNAME_INVALID", caSource: "x" });
    expect(wrongName.fix).toContain("does not name cache.lan");
  });
});

test("formatReport prints one line per check, the fix under a failure, and a summary", () => {
  const report = formatReport([
    { name: "signing-key", ok: true, detail: "fine" },
    { name: "cache-info", ok: false, detail: "answers 404", fix: "run pulumi up --refresh" },
  ]);
  const lines = report.split("\n");
  expect(lines[0]).toMatch(/^PASS +signing-key +fine$/);
  expect(lines[1]).toMatch(/^FAIL +cache-info +answers 404$/);
  expect(lines[2]).toMatch(/^ +fix: run pulumi up --refresh$/);
  expect(lines[3]).toBe("verify: 1 of 2 checks failed: cache-info");
  expect(formatReport([{ name: "lifecycle", ok: true, detail: "ok" }])).toContain("verify: all 1 checks passed");
});

const hashOf = (n: number) => String(n).padStart(32, "0");
const storePath = (n: number) => `/nix/store/${hashOf(n)}-p${n}`;
const narKey = (n: number) => `nar/${n}.nar.zst`;

/** A narinfo for store path number `n` referencing paths `refs`, signed by `signers` (secret keys). */
function pathNarinfo(n: number, refs: number[], ...signers: string[]): string {
  const base =
    `StorePath: ${storePath(n)}\nURL: ${narKey(n)}\nCompression: zstd\n` +
    `NarHash: sha256:${"0".repeat(52)}\nNarSize: ${100 + n}\nReferences: ${refs.map((r) => `${hashOf(r)}-p${r}`).join(" ")}\n`;
  const fp = fingerprint(parseNarinfo(base));
  return base + signers.map((k) => `Sig: ${signDetached(k, fp)}\n`).join("");
}
const narinfo = (n: number, ...signers: string[]) => pathNarinfo(n, [], ...signers);
const narinfoKey = (n: number) => `${hashOf(n)}.narinfo`;
/** Puts path `n` as Nix pushes it: its NAR, then its narinfo `text`. */
function putPath(cache: FakeCache, n: number, text: string) {
  cache.objects.set(narKey(n), "nar bytes");
  cache.objects.set(narinfoKey(n), text);
}
const check = (results: CheckResult[]) => results.find((r) => r.name === "narinfo-signatures");

describe("narinfo-signatures", () => {
  const previous = generateKeypair("s3.homelab.local-0");

  test("an empty cache passes and says so", async () => {
    const results = await runChecks(input(), new FakeCache());
    expect(check(results)).toEqual({ name: "narinfo-signatures", ok: true, detail: "the cache holds no narinfo yet: nothing to check" });
  });

  test("narinfos signed by the active key pass (other Sig lines beside it are fine), read anonymously", async () => {
    const cache = new FakeCache();
    putPath(cache, 1, narinfo(1, keys.secretKey));
    putPath(cache, 2, narinfo(2, previous.secretKey, keys.secretKey));
    const results = await runChecks(input(), cache);
    expect(check(results)).toMatchObject({ ok: true, detail: "all 2 narinfos: each carries a valid signature by the active key s3.homelab.local-1" });
    expect(cache.log).toContain(`anonymous GET ${base}/${narinfoKey(2)}`);
  });

  test("a narinfo signed only by an older key, unsigned, tampered or corrupt fails, each named, with the fix", async () => {
    const cache = new FakeCache();
    putPath(cache, 1, narinfo(1, keys.secretKey));
    putPath(cache, 2, narinfo(2, previous.secretKey));
    putPath(cache, 3, narinfo(3));
    putPath(cache, 4, narinfo(4, keys.secretKey).replace("NarSize: 104", "NarSize: 5"));
    putPath(cache, 5, `${narinfo(5)}Sig: s3.homelab.local-1:AAAA\n`);
    putPath(cache, 6, "not a narinfo");
    const results = await runChecks(input(), cache);
    expect(failed(results)).toEqual(["narinfo-signatures"]);
    const c = check(results);
    expect(c?.detail).toBe(
      "all 6 narinfos: 5 lack a valid signature by the active key s3.homelab.local-1: " +
        `${narinfoKey(2)} (no s3.homelab.local-1 Sig), ${narinfoKey(3)} (no s3.homelab.local-1 Sig), ` +
        `${narinfoKey(4)} (its s3.homelab.local-1 Sig does not verify), ${narinfoKey(5)} (corrupt Sig under s3.homelab.local-1), ` +
        `${narinfoKey(6)} (corrupt narinfo: the last line does not end in a newline (Nix refuses such a file))`,
    );
    expect(c?.fix).toContain("npm run resign");
  });

  test(`a cache of more than ${NARINFO_SAMPLE} narinfos is sampled, and says how; full checks all`, async () => {
    const cache = new FakeCache();
    for (let n = 1; n <= 450; n++) putPath(cache, n, narinfo(n, keys.secretKey));
    const sampled = check(await runChecks(input(), cache));
    expect(sampled).toMatchObject({ ok: true, detail: `${NARINFO_SAMPLE} narinfos chosen at random of 450 (--full checks all): each carries a valid signature by the active key s3.homelab.local-1` });
    expect(cache.log.filter((l) => l.endsWith(".narinfo")).length).toBe(NARINFO_SAMPLE + 1); // + the missing-narinfo check
    const full = check(await runChecks({ ...input(), full: true }, cache));
    expect(full?.detail).toMatch(/^all 450 narinfos: /);
  });

  test("sampleKeys: n distinct keys in listing order, repeatable by seed, all of a short list", () => {
    const keysList = Array.from({ length: 1000 }, (_, i) => `k${String(i).padStart(4, "0")}`);
    const a = sampleKeys(keysList, 200, "seed");
    expect(new Set(a).size).toBe(200);
    expect([...a].sort()).toEqual(a);
    expect(sampleKeys(keysList, 200, "seed")).toEqual(a);
    expect(sampleKeys(keysList, 200, "other")).not.toEqual(a);
    expect(sampleKeys(keysList.slice(0, 5), 200, "seed")).toEqual(keysList.slice(0, 5));
  });
});

// ------------------------------------------------------------------------------------------- private caches

const privateSettings = parseSettings({ endpoint: "http://127.0.0.1:9000", priority: "30", access: "private", readerHosts: '["laptop"]' });
const PROXY = "http://127.0.0.1:8480";
const TOKEN = "t0ken-of-the-laptop-0123456789abcdefghijk";
const privateInput = (proxy = true): VerifyInput => ({
  ...input({}, privateSettings),
  readerAccessKey: "nixreader",
  ...(proxy ? { proxy: { url: PROXY, host: "laptop", token: TOKEN } } : {}),
});

/** A private deployment: no bucket policy (anonymous refused), a read-only reader with ListBucket, a proxy. */
class PrivateCache extends FakeCache implements ReaderProbe {
  reader: "ok" | "disabled" | "no-list" | "can-write" | "can-delete" = "ok";
  proxyState: "ok" | "open" | "old-tokens" | "down" = "ok";
  constructor() {
    super();
    this.anonymousCan.get = false;
  }
  override async anonymous(method: "GET" | "HEAD" | "PUT" | "DELETE", url: string, body?: string): Promise<HttpAnswer> {
    if (method !== "HEAD") return super.anonymous(method, url, body);
    // A HEAD answers as a GET would, without the body.
    const answer = await super.anonymous("GET", url);
    this.log[this.log.length - 1] = `anonymous HEAD ${url}`;
    return { status: answer.status, body: "" };
  }
  private readerRefusal(): S3Answer | undefined {
    return this.reader === "disabled" ? { status: 403, body: "", code: "InvalidAccessKeyId" } : undefined;
  }
  async readerGet(key: string): Promise<S3Answer> {
    this.log.push(`reader GET ${key}`);
    const refused = this.readerRefusal();
    if (refused) return refused;
    const v = this.objects.get(key);
    if (v !== undefined) return { status: 200, body: v };
    // Without s3:ListBucket, MinIO cannot say "no such key" to the reader.
    return this.reader === "no-list"
      ? { status: 403, body: "<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>" }
      : { status: 404, body: "", code: "NoSuchKey" };
  }
  async readerPut(key: string, body: string): Promise<S3Outcome> {
    this.log.push(`reader PUT ${key}`);
    if (this.reader === "disabled") return { ok: false, code: "InvalidAccessKeyId", message: "disabled" };
    if (this.reader !== "can-write") return { ok: false, code: "AccessDenied", message: "Access Denied." };
    this.objects.set(key, body);
    return { ok: true };
  }
  async readerDelete(key: string): Promise<S3Outcome> {
    this.log.push(`reader DELETE ${key}`);
    if (this.reader === "disabled") return { ok: false, code: "InvalidAccessKeyId", message: "disabled" };
    if (this.reader !== "can-delete") return { ok: false, code: "AccessDenied", message: "Access Denied." };
    this.objects.delete(key);
    return { ok: true };
  }
  async proxyGet(url: string, basic?: { user: string; password: string }): Promise<HttpAnswer> {
    this.log.push(`proxy GET ${url}${basic ? ` as ${basic.user}` : ""}`);
    if (this.proxyState === "down") throw new Error(`cannot reach 127.0.0.1:8480 (GET ${url}): connect ECONNREFUSED`);
    const known = basic?.user === "laptop" && basic.password === TOKEN && this.proxyState !== "old-tokens";
    if (!known && this.proxyState !== "open") return { status: 401, body: "" };
    const upstream = await this.readerGet(url.slice(PROXY.length + 1));
    return upstream.status === 200 || upstream.status === 404 ? upstream : { status: 502, body: "" };
  }
}

const probeLeft = (cache: FakeCache) => [...cache.objects.keys()].filter((k) => k.startsWith("nix-cache-verify-probe"));

describe("runChecks on a private cache", () => {
  test("checksFor: public runs the checks of before; private swaps the anonymous reads for the reader's, the proxy last and only when given", () => {
    expect(checksFor("public", false)).toEqual([
      "signing-key", "tls-certificate", "cache-info", "narinfo-miss", "anonymous-list", "anonymous-write", "builder-upload",
      "anonymous-delete", "builder-delete", "lifecycle", "narinfo-signatures", "closures",
    ]);
    expect(checksFor("public", true)).toEqual(checksFor("public", false));
    expect(checksFor("private", true)).toEqual([
      "signing-key", "tls-certificate", "anonymous-read", "reader-read", "anonymous-list", "anonymous-write", "reader-write",
      "builder-upload", "anonymous-delete", "reader-delete", "builder-delete", "lifecycle", "narinfo-signatures", "closures", "proxy",
    ]);
    expect(checksFor("private", false)).toEqual(checksFor("private", true).filter((c) => c !== "proxy"));
    expect(new Set([...checksFor("public", false), ...checksFor("private", true)])).toEqual(new Set(CHECKS));
  });

  test("a healthy private cache passes every check, in order; the reader deletes only a probe; no probe object is left", async () => {
    const cache = new PrivateCache();
    const results = await runChecks(privateInput(), cache);
    expect(results.map((r) => r.name)).toEqual(checksFor("private", true));
    expect(failed(results)).toEqual([]);
    expect(probeLeft(cache)).toEqual([]);
    expect(cache.objects.get("nix-cache-info")).toBe(renderCacheInfo(settings));
    const readerDeletes = cache.log.filter((l) => l.startsWith("reader DELETE "));
    expect(readerDeletes).toEqual(["reader DELETE nix-cache-verify-probe-r4nd0m-reader-delete"]);
    expect(cache.log).toEqual(
      expect.arrayContaining([
        `anonymous GET ${base}/nix-cache-info`,
        `anonymous HEAD ${base}/nix-cache-info`,
        `anonymous GET ${base}/${MISSING_NARINFO}`,
        `anonymous GET ${base}/?list-type=2`,
        "reader GET nix-cache-info",
        `reader GET ${MISSING_NARINFO}`,
        `proxy GET ${PROXY}/nix-cache-info as laptop`,
        `proxy GET ${PROXY}/nix-cache-info`,
      ]),
    );
    const line = (name: string) => results.find((r) => r.name === name)?.detail;
    expect(line("anonymous-read")).toBe(`anonymous GET nix-cache-info, HEAD nix-cache-info, GET ${MISSING_NARINFO} are refused (403)`);
    expect(line("reader-read")).toBe("the reader (nixreader) reads nix-cache-info (StoreDir /nix/store, WantMassQuery 1, Priority 30); a missing narinfo answers 404");
    expect(line("proxy")).toBe(`${PROXY}/nix-cache-info: laptop's token reads nix-cache-info (200), no credentials get 401`);
  });

  test("without --proxy there is no proxy check and no request to a proxy", async () => {
    const cache = new PrivateCache();
    const results = await runChecks(privateInput(false), cache);
    expect(results.map((r) => r.name)).toEqual(checksFor("private", false));
    expect(failed(results)).toEqual([]);
    expect(cache.log.filter((l) => l.startsWith("proxy "))).toEqual([]);
  });

  test.each<[string, (c: PrivateCache) => void, string[], RegExp]>([
    ["anonymous download allowed by hand (mc anonymous set download)", (c) => { c.anonymousCan.get = true; }, ["anonymous-read"], /GET nix-cache-info answers 200.*mc anonymous set download/],
    ["anonymous listing allowed by hand", (c) => { c.anonymousCan.list = true; }, ["anonymous-list"], /anyone can enumerate the private cache/],
    ["anonymous PutObject allowed", (c) => { c.anonymousCan.put = true; }, ["anonymous-write"], /anyone can upload/],
    ["reader disabled", (c) => { c.reader = "disabled"; }, ["reader-read", "reader-write", "reader-delete", "proxy"], /does not accept the reader's access key nixreader/],
    ["reader without s3:ListBucket", (c) => { c.reader = "no-list"; }, ["reader-read"], /missing narinfo answers 403 AccessDenied to the reader, not 404: the reader lacks s3:ListBucket/],
    ["reader may upload", (c) => { c.reader = "can-write"; }, ["reader-write"], /the reader \(nixreader\) uploaded a probe object \(removed again as the admin\)/],
    ["reader may delete", (c) => { c.reader = "can-delete"; }, ["reader-delete"], /the reader \(nixreader\) deleted a probe object the admin had put/],
    ["nix-cache-info deleted", (c) => { c.objects.delete("nix-cache-info"); }, ["reader-read", "proxy"], /nix-cache-info answers 404 to the reader/],
    ["proxy serves without a token", (c) => { c.proxyState = "open"; }, ["proxy"], /answers 200 without credentials: anyone who reaches the proxy reads the private cache/],
    ["proxy with an old tokens file", (c) => { c.proxyState = "old-tokens"; }, ["proxy"], /refuses laptop's token \(401\)/],
    ["proxy not running", (c) => { c.proxyState = "down"; }, ["proxy"], /could not check: cannot reach 127\.0\.0\.1:8480/],
  ])("%s fails exactly the checks that name it, with a fix", async (_what, breakIt, expected, detail) => {
    const cache = new PrivateCache();
    breakIt(cache);
    const results = await runChecks(privateInput(), cache);
    expect(failed(results)).toEqual(expected);
    for (const r of results.filter((x) => !x.ok)) expect(r.fix).toMatch(/\S/);
    expect(results.filter((r) => !r.ok).map((r) => r.detail).join("\n")).toMatch(detail);
    expect(probeLeft(cache)).toEqual([]);
    expect(cache.objects.has("nix-cache-info")).toBe(_what !== "nix-cache-info deleted");
  });

  test("an anonymous download policy's fix is up --refresh and names mc anonymous set download", async () => {
    const cache = new PrivateCache();
    cache.anonymousCan.get = true;
    const r = (await runChecks(privateInput(), cache)).find((x) => x.name === "anonymous-read");
    expect(r?.fix).toMatch(/^run `pulumi up --refresh` on this stack/);
    expect(r?.fix).toContain("`mc anonymous set download`");
  });

  test("narinfo-signatures reads narinfos as the reader, not anonymously", async () => {
    const cache = new PrivateCache();
    putPath(cache, 1, narinfo(1, keys.secretKey));
    const results = await runChecks(privateInput(), cache);
    expect(failed(results)).toEqual([]);
    expect(check(results)?.detail).toBe("all 1 narinfos: each carries a valid signature by the active key s3.homelab.local-1");
    expect(cache.log).toContain(`reader GET ${narinfoKey(1)}`);
    expect(cache.log).not.toContain(`anonymous GET ${base}/${narinfoKey(1)}`);
  });

  test("a public cache makes no reader or proxy request, even with a probe that can", async () => {
    const cache = new PrivateCache();
    cache.anonymousCan.get = true;
    const results = await runChecks(input(), cache);
    expect(results.map((r) => r.name)).toEqual(checksFor("public", false));
    expect(failed(results)).toEqual([]);
    expect(cache.log.filter((l) => /^(reader|proxy) /.test(l))).toEqual([]);
  });

  test("a private cache without the reader's side of the probe is the caller's mistake: runChecks throws", async () => {
    await expect(runChecks(privateInput(), new FakeCache())).rejects.toThrow(/ReaderProbe/);
  });
});

describe("the private checks' judges", () => {
  const ok = { ok: true } as const;
  const deniedOutcome = { ok: false, code: "AccessDenied", message: "Access Denied." } as const;
  const info: S3Answer = { status: 200, body: renderCacheInfo(privateSettings) };
  const notFound: S3Answer = { status: 404, body: "", code: "NoSuchKey" };

  test("anonymous-read: 403 and 401 pass; a 200 or a 404 (allowed, just missing) fails", () => {
    expect(judgeAnonymousRead([{ request: "GET nix-cache-info", status: 403 }, { request: "HEAD nix-cache-info", status: 401 }]).ok).toBe(true);
    const open = judgeAnonymousRead([{ request: "GET nix-cache-info", status: 403 }, { request: "GET x.narinfo", status: 404 }]);
    expect(open.ok).toBe(false);
    expect(open.detail).toContain("GET x.narinfo answers 404 (allowed; the key just does not exist)");
    expect(open.detail).not.toContain("GET nix-cache-info answers");
    expect(judgeAnonymousRead([{ request: "HEAD nix-cache-info", status: 200 }]).ok).toBe(false);
  });

  test("reader-read: 200 with the configured values and a 404 miss pass; other values, a 403 miss, a refusal fail", () => {
    expect(judgeReaderRead(info, notFound, privateSettings, "nixreader").ok).toBe(true);
    const wrongValues = judgeReaderRead({ status: 200, body: "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 30\n" }, notFound, privateSettings, "nixreader");
    expect(wrongValues).toMatchObject({ ok: false, detail: "nix-cache-info serves WantMassQuery 0 (configured 1)" });
    const noList = judgeReaderRead(info, { status: 403, body: "<Error><Code>AccessDenied</Code></Error>" }, privateSettings, "nixreader");
    expect(noList.ok).toBe(false);
    expect(noList.fix).toContain("ListBucket");
    const badSecret = judgeReaderRead({ status: 403, body: "", code: "SignatureDoesNotMatch" }, notFound, privateSettings, "nixreader");
    expect(badSecret).toMatchObject({ ok: false, detail: expect.stringContaining("rejects the reader's secret key") });
    expect(badSecret.fix).toContain("readerCredentials");
    expect(judgeReaderRead(info, { status: 500, body: "" }, privateSettings, "nixreader").detail).toContain("answers HTTP 500");
  });

  test("reader-write and reader-delete: AccessDenied passes; success fails; another refusal cannot tell", () => {
    for (const judge of [judgeReaderWrite, judgeReaderDelete]) {
      expect(judge(deniedOutcome, "nixreader").ok).toBe(true);
      const widened = judge(ok, "nixreader");
      expect(widened.ok).toBe(false);
      expect(widened.fix).toContain("pulumi up --refresh");
      const unknown = judge({ ok: false, code: "InvalidAccessKeyId", message: "gone" }, "nixreader");
      expect(unknown).toMatchObject({ ok: false, detail: expect.stringMatching(/^cannot tell whether the reader may /) });
    }
  });

  test("proxy: 200 with the token and 401 without pass; anything else fails", () => {
    const url = `${PROXY}/nix-cache-info`;
    const unauthorized = { status: 401, body: "" };
    expect(judgeProxy(url, "laptop", info, unauthorized, privateSettings).ok).toBe(true);
    expect(judgeProxy(url, "laptop", info, info, privateSettings).detail).toContain("answers 200 without credentials");
    expect(judgeProxy(url, "laptop", info, { status: 403, body: "" }, privateSettings).detail).toContain("answers 403 without credentials, not 401");
    expect(judgeProxy(url, "laptop", unauthorized, unauthorized, privateSettings).fix).toContain("nix-cache-proxy-tokens");
    expect(judgeProxy(url, "laptop", { status: 502, body: "" }, unauthorized, privateSettings).detail).toContain("cannot read the cache from MinIO");
    expect(judgeProxy(url, "laptop", { status: 404, body: "" }, unauthorized, privateSettings).ok).toBe(false);
    expect(judgeProxy(url, "laptop", { status: 200, body: "StoreDir: /gnu/store\n" }, unauthorized, privateSettings).ok).toBe(false);
  });
});

describe("lifecycle", () => {
  const lifecycleOf = async (config: unknown, s = settings) => {
    const cache = new FakeCache();
    cache.lifecycle = config;
    return (await runChecks(input({}, s), cache)).find((r) => r.name === "lifecycle");
  };
  const rule = (over: Record<string, unknown>) => ({ Rule: [{ ID: "hand", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 }, ...over }] });

  test("retention gc: no rule passes; a rule expiring cached objects fails, naming it and why, with the fix", async () => {
    expect(await lifecycleOf(undefined)).toMatchObject({ ok: true, detail: expect.stringContaining("no lifecycle rule expires cached objects") });
    for (const config of [
      rule({}),
      rule({ Filter: { Prefix: "nar/" } }),
      rule({ Filter: { Prefix: "0" } }),
      rule({ Filter: { And: { Prefix: "", ObjectSizeGreaterThan: 1000 } } }),
      lifecycleConfiguration(expiryRule(7, renderCacheInfo(settings))), // the lifecycle mode's own rule, left behind
    ]) {
      const r = await lifecycleOf(config);
      expect(r?.ok).toBe(false);
      expect(r?.detail).toMatch(/^retention is gc, but the bucket's lifecycle expires cached objects: \S+ \(7 days/);
      expect(r?.detail).toContain("closures break");
      expect(r?.fix).toContain("pulumi up --refresh");
    }
  });

  test("retention gc: rules that expire no cached object pass (disabled, other prefixes)", async () => {
    expect((await lifecycleOf(rule({ Status: "Disabled" })))?.ok).toBe(true);
    expect((await lifecycleOf(rule({ Filter: { Prefix: "tmp/" } })))?.ok).toBe(true);
    expect((await lifecycleOf(rule({ Filter: { Prefix: "gc/" } })))?.ok).toBe(true);
  });

  test("retention lifecycle: our rule passes; none, a whole-bucket rule or other days fail, each with the fix", async () => {
    const ours = lifecycleConfiguration(expiryRule(lifecycleSettings.expireDays, renderCacheInfo(lifecycleSettings)));
    expect(await lifecycleOf(ours, lifecycleSettings)).toMatchObject({ ok: true, detail: expect.stringContaining("objects expire after 7 days") });
    const none = await lifecycleOf(undefined, lifecycleSettings);
    expect(none).toMatchObject({ ok: false, detail: expect.stringContaining("no enabled expiry rule") });
    const whole = await lifecycleOf(rule({}), lifecycleSettings);
    expect(whole).toMatchObject({ ok: false, detail: expect.stringContaining("also expires nix-cache-info") });
    const days = await lifecycleOf(lifecycleConfiguration(expiryRule(30, renderCacheInfo(lifecycleSettings))), lifecycleSettings);
    expect(days).toMatchObject({ ok: false, detail: expect.stringContaining("expire after 30 days, configured nix-cache:expireDays is 7") });
    for (const r of [none, whole, days]) expect(r?.fix).toContain("pulumi up --refresh");
  });
});

describe("closures", () => {
  const closures = (results: CheckResult[]) => results.find((r) => r.name === "closures");
  /** A chain 1 ← 2 ← … ← n (each references the one before, and itself), signed, NARs present. */
  function chainCache(n: number): FakeCache {
    const cache = new FakeCache();
    for (let i = 1; i <= n; i++) putPath(cache, i, pathNarinfo(i, i > 1 ? [i, i - 1] : [i], keys.secretKey));
    return cache;
  }

  test("an empty cache passes and says so", async () => {
    const results = await runChecks(input(), new FakeCache());
    expect(closures(results)).toEqual({ name: "closures", ok: true, detail: "the cache holds no narinfo yet: nothing to check" });
  });

  test("whole closures pass, saying how many were checked; every check passes", async () => {
    const results = await runChecks(input(), chainCache(5));
    expect(failed(results)).toEqual([]);
    expect(closures(results)?.detail).toBe("all 5 narinfos: each has its NAR and the narinfos of its references");
  });

  test("a missing NAR fails, naming the store path and the NAR, with the fix", async () => {
    const cache = chainCache(3);
    cache.objects.delete(narKey(2));
    const results = await runChecks(input(), cache);
    expect(failed(results)).toEqual(["closures"]);
    const c = closures(results);
    expect(c?.detail).toBe(
      "all 3 narinfos: 1 lacks its NAR or a reference's narinfo, so a host that substitutes it fails or builds from source:\n" +
        `${storePath(2)} lacks its NAR ${narKey(2)}`,
    );
    expect(c?.fix).toContain("run `npm run gc`: it removes broken closures");
    expect(c?.fix).toContain("push the paths again");
    expect(c?.fix).not.toContain("lifecycle");
  });

  test("a missing reference fails, naming the dependent and the reference by store path; the dependency's own dependents pass", async () => {
    const cache = chainCache(4);
    cache.objects.delete(narinfoKey(2));
    const results = await runChecks(input(), cache);
    const c = closures(results);
    expect(c?.ok).toBe(false);
    // Only 3 lacks something itself (4 has 3, whose narinfo is present): the check is the invariant, one step.
    expect(c?.detail.split("\n")).toEqual([
      "all 3 narinfos: 1 lacks its NAR or a reference's narinfo, so a host that substitutes it fails or builds from source:",
      `${storePath(3)} lacks the narinfo of ${storePath(2)} (${narinfoKey(2)})`,
    ]);
    // formatReport keeps the broken paths under the check's line, the fix last.
    const report = formatReport(results).split("\n");
    const at = report.findIndex((l) => /^FAIL +closures /.test(l));
    expect(report[at + 1]).toMatch(new RegExp(`^ {20,}${storePath(3)} lacks `));
    expect(report[at + 2]).toMatch(/^ +fix: run `npm run gc`/);
  });

  test(`at most ${BROKEN_SHOWN} broken paths are named, then how many more`, async () => {
    const cache = new FakeCache();
    for (let i = 1; i <= 15; i++) putPath(cache, i, pathNarinfo(i, [100 + i], keys.secretKey)); // 101…115 never pushed
    const c = closures(await runChecks(input(), cache));
    const lines = c?.detail.split("\n") ?? [];
    expect(lines[0]).toMatch(/^all 15 narinfos: 15 lack their NAR or a reference's narinfo/);
    expect(lines.slice(1, -1)).toHaveLength(BROKEN_SHOWN);
    expect(lines[1]).toBe(`${storePath(1)} lacks the narinfo of ${storePath(101)} (${narinfoKey(101)})`);
    expect(lines[lines.length - 1]).toBe("and 5 more");
  });

  test("with retention lifecycle the fix also names the expiry rule as the cause", async () => {
    const cache = chainCache(2);
    cache.lifecycle = lifecycleConfiguration(expiryRule(lifecycleSettings.expireDays, renderCacheInfo(lifecycleSettings)));
    cache.objects.delete(narinfoKey(1));
    const results = await runChecks(input({}, lifecycleSettings), cache);
    expect(failed(results)).toEqual(["closures"]);
    expect(closures(results)?.fix).toContain("nix-cache:retention is lifecycle: its expiry rule deletes each object on its own");
    expect(closures(results)?.fix).toContain("Retention: old paths go, closures stay whole");
  });

  test(`samples ${NARINFO_SAMPLE} narinfos at random by default (a broken one may be missed), --full checks all`, async () => {
    const cache = chainCache(450);
    cache.objects.delete(narKey(450)); // the top of the chain: nothing else depends on it
    const sampleOf = async (random: string) => {
      cache.adminGets = [];
      const c = closures(await runChecks({ ...input(), random }, cache));
      return { c, gets: cache.adminGets.filter((k) => k.endsWith(".narinfo")) };
    };
    const a = await sampleOf("seed-a");
    expect(a.c?.detail).toMatch(new RegExp(`^${NARINFO_SAMPLE} narinfos chosen at random of 450 \\(--full checks all\\)`));
    expect(new Set(a.gets).size).toBeGreaterThanOrEqual(NARINFO_SAMPLE);
    expect(new Set(a.gets).size).toBeLessThanOrEqual(NARINFO_SAMPLE + 1); // + a re-read to name a broken path's references
    // Repeatable by seed; another seed picks others.
    expect((await sampleOf("seed-a")).gets).toEqual(a.gets);
    expect(new Set((await sampleOf("seed-b")).gets)).not.toEqual(new Set(a.gets));
    // The broken path is found exactly when the sample holds it.
    expect(a.c?.ok).toBe(!a.gets.includes(narinfoKey(450)));

    cache.adminGets = [];
    const full = closures(await runChecks({ ...input(), full: true }, cache));
    expect(full?.ok).toBe(false);
    expect(full?.detail.split("\n")).toEqual([
      "all 450 narinfos: 1 lacks its NAR or a reference's narinfo, so a host that substitutes it fails or builds from source:",
      `${storePath(450)} lacks its NAR ${narKey(450)}`,
    ]);
    expect(new Set(cache.adminGets).size).toBe(450);
  });
});
