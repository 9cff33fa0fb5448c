// The verify checks judged from canned answers: a healthy cache passes every check, and each broken part
// fails the check that names it, with a fix. The real network side is tested in tests/integration/verify.test.ts.
import { renderCacheInfo } from "../../lib/cacheInfo";
import { expiryRule, lifecycleConfiguration } from "../../lib/lifecycle";
import { parseSettings } from "../../lib/settings";
import { fingerprint, parseNarinfo } from "../../lib/narinfo";
import { generateKeypair, signDetached } from "../../lib/signingKey";
import {
  CacheProbe,
  CHECKS,
  CheckResult,
  formatReport,
  HttpAnswer,
  judgeTls,
  MISSING_NARINFO,
  NARINFO_SAMPLE,
  runChecks,
  sampleKeys,
  S3Outcome,
  VerifyInput,
} from "../../lib/verify";

const settings = parseSettings({ endpoint: "http://127.0.0.1:9000", priority: "30" });
const keys = generateKeypair("s3.homelab.local-1");
const base = "http://127.0.0.1:9000/nix-cache";

/** An in-memory cache that answers like a healthy deployment; tests break one part at a time. */
class FakeCache implements CacheProbe {
  objects = new Map<string, string>([["nix-cache-info", renderCacheInfo(settings)]]);
  anonymousCan = { get: true, put: false, delete: false, list: false };
  builder: "ok" | "disabled" | "can-delete" = "ok";
  lifecycle: unknown = lifecycleConfiguration(expiryRule(settings.expireDays, renderCacheInfo(settings)));
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
    expect(results.map((r) => r.name)).toEqual([...CHECKS]);
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
    ["no lifecycle rule", (c) => { c.lifecycle = undefined; }, ["lifecycle"]],
    [
      "a whole-bucket expiry rule",
      (c) => { c.lifecycle = { Rule: [{ ID: "all", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 } }] }; },
      ["lifecycle"],
    ],
    ["expiry days drifted", (c) => { c.lifecycle = lifecycleConfiguration(expiryRule(30, renderCacheInfo(settings))); }, ["lifecycle"]],
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
    expect(failed(results)).toEqual(CHECKS.filter((c) => c !== "signing-key" && c !== "tls-certificate"));
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

/** A narinfo for store path number `n`, signed by `signers` (secret keys). */
function narinfo(n: number, ...signers: string[]): string {
  const hash = String(n).padStart(32, "0");
  const base =
    `StorePath: /nix/store/${hash}-p${n}\nURL: nar/${n}.nar.zst\nCompression: zstd\n` +
    `NarHash: sha256:${"0".repeat(52)}\nNarSize: ${100 + n}\nReferences: \n`;
  const fp = fingerprint(parseNarinfo(base));
  return base + signers.map((k) => `Sig: ${signDetached(k, fp)}\n`).join("");
}
const narinfoKey = (n: number) => `${String(n).padStart(32, "0")}.narinfo`;
const check = (results: CheckResult[]) => results.find((r) => r.name === "narinfo-signatures");

describe("narinfo-signatures", () => {
  const previous = generateKeypair("s3.homelab.local-0");

  test("an empty cache passes and says so", async () => {
    const results = await runChecks(input(), new FakeCache());
    expect(check(results)).toEqual({ name: "narinfo-signatures", ok: true, detail: "the cache holds no narinfo yet: nothing to check" });
  });

  test("narinfos signed by the active key pass (other Sig lines beside it are fine), read anonymously", async () => {
    const cache = new FakeCache();
    cache.objects.set(narinfoKey(1), narinfo(1, keys.secretKey));
    cache.objects.set(narinfoKey(2), narinfo(2, previous.secretKey, keys.secretKey));
    const results = await runChecks(input(), cache);
    expect(check(results)).toMatchObject({ ok: true, detail: "all 2 narinfos: each carries a valid signature by the active key s3.homelab.local-1" });
    expect(cache.log).toContain(`anonymous GET ${base}/${narinfoKey(2)}`);
  });

  test("a narinfo signed only by an older key, unsigned, tampered or corrupt fails, each named, with the fix", async () => {
    const cache = new FakeCache();
    cache.objects.set(narinfoKey(1), narinfo(1, keys.secretKey));
    cache.objects.set(narinfoKey(2), narinfo(2, previous.secretKey));
    cache.objects.set(narinfoKey(3), narinfo(3));
    cache.objects.set(narinfoKey(4), narinfo(4, keys.secretKey).replace("NarSize: 104", "NarSize: 5"));
    cache.objects.set(narinfoKey(5), `${narinfo(5)}Sig: s3.homelab.local-1:AAAA\n`);
    cache.objects.set(narinfoKey(6), "not a narinfo");
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
    for (let n = 1; n <= 450; n++) cache.objects.set(narinfoKey(n), narinfo(n, keys.secretKey));
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
