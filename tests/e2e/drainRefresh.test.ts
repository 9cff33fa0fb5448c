// The builder drain's keep-alive (issue 12) with real MinIO and Nix 2.8, through the builder module as the
// NixOS stand-in evaluates it: a dependency D pushed earlier is refreshed in place (CopyObject onto itself:
// newer LastModified, same ETag and Content-Type, NAR no later than narinfo) when a dependent is pushed,
// while a sibling pushed with D but outside the closure keeps its age. The push stand-in (pushViaFile) skips
// paths already cached, as Nix does, so the refresh is the drain's and not a re-upload. With the cache down the
// push fails as before and nothing is refreshed; with keys that may read but not write, the push (made with
// the builder's keys) succeeds, the refresh is refused, and the drain still exits 0 saying so.
// Over https the refresh trusts the CA bundle the module exports as NIX_SSL_CERT_FILE.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { builderModule, PUSH_COMMAND_ENV } from "../../lib/hosts/builderModule";
import { parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { minioAdmin } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { deployCache, PROJECT_DIR, removeDeployment, TestStack } from "../../harness/stack";
import { evalHostModules, EvaluatedModules, nixEnv } from "../support/nixosStandIn";
import { BUCKET, rootOf, rootS3, targetOf } from "../integration/helpers";
import { keptSince, startGcCli } from "../support/gcCli";
import { requireNix } from "./nixEnv";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let work: string;
let minioDown = false;
const out = (name: string): string => String(outputs[name]?.value);
const store = () => path.join(work, "store");
const spool = () => path.join(work, "spool");
const queue = () => path.join(spool(), "queue");
const file = (name: string) => path.join(work, name);
const pushViaFile = () => `node -r ${require.resolve("ts-node/register/transpile-only")} ${path.join(PROJECT_DIR, "tests/support/pushViaFile.ts")}`;
const NONCE = crypto.randomBytes(8).toString("hex");

/** D and its sibling S (no references), and dependents of D: each output names D's path, a reference. */
const EXPRESSION = `
let
  mk = name: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo \${name} ${NONCE} \${toString deps} > $out" ];
  };
in rec {
  dep = mk "dep" [ ];
  sibling = mk "sibling" [ ];
  top = mk "top" [ dep ];
  top2 = mk "top2" [ dep ];
  top3 = mk "top3" [ dep ];
}
`;

/** The builder module evaluated with these settings, its scripts written under `name`. */
function builderWith(name: string, settings: Record<string, string | number>): EvaluatedModules {
  return evalHostModules(file(`eval-${name}`), { client: file("client.nix"), builder: file("builder.nix") }, {
    spoolDir: spool(),
    signingKeyFile: file("signing-key"),
    awsCredentialsFile: file("aws-credentials"),
    pushAttempts: 1,
    retryDelaySec: 1,
    ...settings,
  }, file(`scripts-${name}`));
}

/** nix-build of an attribute, with the module's hook when `hook` is given (which queues it). */
function build(attrs: string[], hook?: EvaluatedModules): string[] {
  const config = [`secret-key-files = ${file("signing-key")}`];
  if (hook) config.push(`post-build-hook = ${hook.builder.nix.settings["post-build-hook"]}`);
  const r = spawnSync("nix-build", ["--store", store(), "--no-out-link", file("paths.nix"), ...attrs.flatMap((a) => ["-A", a])], {
    env: nixEnv(file("home-build"), config),
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`nix-build failed: ${r.stderr}`);
  return r.stdout.trim().split("\n");
}

/** Runs the evaluated drain as systemd would, with pushViaFile in place of Nix's missing S3 store. */
function drain(module: EvaluatedModules, pushCommand = pushViaFile()) {
  return spawnSync(String(module.builder.systemd.services["nix-cache-push"].serviceConfig.ExecStart), [], {
    cwd: PROJECT_DIR,
    env: { ...nixEnv(file("home-drain"), [`store = ${store()}`]), [PUSH_COMMAND_ENV]: pushCommand },
    encoding: "utf8",
    timeout: 180_000,
  });
}

interface ObjectState {
  /** LastModified from ListObjectsV2 (milliseconds). */
  modified: number;
  etag: string;
  contentType: string;
}

/** The bucket's objects as the root user sees them, key → state. */
async function bucketState(): Promise<Map<string, ObjectState>> {
  const s3 = rootS3(minio);
  const state = new Map<string, ObjectState>();
  for await (const o of s3.listObjectsV2(BUCKET, "", true)) {
    const item = o as { name: string; lastModified: Date; etag: string };
    const stat = await s3.statObject(BUCKET, item.name);
    state.set(item.name, { modified: item.lastModified.getTime(), etag: item.etag, contentType: String(stat.metaData["content-type"]) });
  }
  return state;
}

const narinfoKey = (storePath: string) => `${path.basename(storePath).slice(0, 32)}.narinfo`;
/** The narinfo key and its NAR's key (from the narinfo's URL line). */
async function keysOf(storePath: string): Promise<{ narinfo: string; nar: string }> {
  const narinfo = narinfoKey(storePath);
  const chunks: Buffer[] = [];
  for await (const chunk of await rootS3(minio).getObject(BUCKET, narinfo)) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  const nar = /^URL: (.+)$/m.exec(text)?.[1];
  if (!nar) throw new Error(`${narinfo} has no URL line: ${text}`);
  return { narinfo, nar };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dep = "";
let sibling = "";
let before: Map<string, ObjectState>;
let refreshing: EvaluatedModules;

/** A cache deployed on a new MinIO (https with its own CA when `tls`), and the builder's files in a new `work`. */
async function setUp(tls: boolean): Promise<void> {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-refresh-"));
  ({ minio, t, outputs } = await deployCache(tls ? "e2e-refresh-tls" : "e2e-refresh", {}, undefined, { tls }));
  fs.writeFileSync(file("client.nix"), out("nixosModule"));
  fs.writeFileSync(file("builder.nix"), builderModule({ pushUrl: out("pushUrl"), publicKey: out("publicKey") }));
  fs.writeFileSync(file("signing-key"), out("secretKey"), { mode: 0o600 });
  fs.writeFileSync(file("aws-credentials"), out("awsCredentials"), { mode: 0o600 });
  fs.writeFileSync(file("paths.nix"), EXPRESSION);
  // The host's CA bundle: the system's plus the cache's CA (what security.pki.certificates gives a NixOS host).
  fs.writeFileSync(file("ca-bundle.crt"), [fs.readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8"), minio.tls?.ca.certPem ?? ""].join("\n"));
  refreshing = builderWith("refresh", { refreshAfterSec: 1, sslCertFile: file("ca-bundle.crt") });
}

async function tearDown(): Promise<void> {
  if (minioDown) await minio?.restart().catch(() => undefined);
  minioDown = false;
  await removeDeployment(t, minio);
  if (work) fs.rmSync(work, { recursive: true, force: true });
}

beforeAll(async () => {
  requireNix();
  await setUp(false);
});

afterAll(tearDown);

/** pushViaFile run by hand, as a builder pushed these paths earlier. */
function pushByHand(paths: string[]) {
  return spawnSync("sh", ["-c", `${pushViaFile()} "$@"`, "push", ...paths], {
    cwd: PROJECT_DIR,
    env: {
      ...nixEnv(file("home-push"), [`store = ${store()}`]),
      NIX_CACHE_PUSH_URL: out("pushUrl"),
      AWS_SHARED_CREDENTIALS_FILE: file("aws-credentials"),
      NIX_SSL_CERT_FILE: file("ca-bundle.crt"),
    },
    encoding: "utf8",
    timeout: 120_000,
  });
}

describe("the drain keeps the cached closure of what it pushes alive", () => {
  test("D and a sibling are pushed first (pushViaFile, as a builder pushed them days ago)", async () => {
    [dep, sibling] = build(["dep", "sibling"]);
    const push = pushByHand([dep, sibling]);
    expect([push.status, push.stderr]).toEqual([0, expect.not.stringContaining("pushViaFile:")]);
    expect(push.stdout).toContain("uploaded 4 files");
    await sleep(2500);
    before = await bucketState();
    const d = await keysOf(dep);
    expect(before.get(d.narinfo)?.contentType).toBe("text/x-nix-narinfo");
    expect(before.get(d.nar)?.contentType).toBe("application/x-nix-nar");
  });

  test("pushing a dependent refreshes D in place (newer, same ETag and type, NAR first) and leaves the sibling alone", async () => {
    expect(dep).not.toBe("");
    const [top] = build(["top"], refreshing);
    expect(fs.readdirSync(queue())).toHaveLength(1);
    const r = drain(refreshing);
    // stderr holds nix copy's progress; none of the drain's complaints.
    expect(r.stderr).not.toMatch(/^(nix-cache|pushViaFile):/m);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nix-cache: pushed 1 paths to s3://");
    // The push stand-in skipped D as Nix's S3 store does: only the dependent went up.
    expect(r.stdout).toContain("uploaded 2 files");
    expect(r.stdout).toContain("1 paths were already cached");
    // top itself was uploaded a moment ago: refreshed too only when that moment crossed a second.
    expect(r.stdout).toMatch(/^nix-cache: refreshed [12] of 2 cached paths$/m);
    expect(fs.readdirSync(queue())).toEqual([]);

    const after = await bucketState();
    const d = await keysOf(dep);
    for (const key of [d.narinfo, d.nar]) {
      const [was, now] = [before.get(key), after.get(key)];
      expect(now?.modified).toBeGreaterThan((was?.modified ?? Infinity) + 1000);
      expect([key, now?.etag, now?.contentType]).toEqual([key, was?.etag, was?.contentType]);
    }
    expect(after.get(d.nar)?.modified).toBeLessThanOrEqual(after.get(d.narinfo)?.modified ?? 0);
    const s = await keysOf(sibling);
    for (const key of [s.narinfo, s.nar]) expect([key, after.get(key)]).toEqual([key, before.get(key)]);
    expect(after.has(narinfoKey(top))).toBe(true);

    // Nothing secret in what the drain printed.
    const secrets = [out("builderSecretKey"), minio.rootPassword, out("secretKey").split(":")[1]];
    expect(secrets.map((x) => x.length >= 24)).toEqual([true, true, true]);
    expect(secrets.map((x) => `${r.stdout}${r.stderr}`.includes(x))).toEqual([false, false, false]);
  });

  test("with the cache down the push fails as before and nothing is refreshed", async () => {
    build(["top2"], refreshing);
    const state = await bucketState();
    await minio.stop();
    minioDown = true;
    const r = drain(refreshing);
    await minio.restart();
    minioDown = false;
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/pushing 1 paths to s3:\/\/.* failed 1 times; they stay queued/);
    expect(`${r.stdout}${r.stderr}`).not.toContain("nix-cache: refresh");
    expect(fs.readdirSync(queue())).toHaveLength(1);
    expect(await bucketState()).toEqual(state);
    // Back up, the next drain pushes what stayed queued.
    const again = drain(refreshing);
    expect([again.status, fs.readdirSync(queue())]).toEqual([0, []]);
  });

  test("when the refresh is refused (keys without PutObject), the drain still exits 0 after a successful push, and says so", async () => {
    // A read-only user in the builder's profile for the drain's own requests; the push keeps the builder's keys.
    const readonlyKey = crypto.randomBytes(24).toString("base64url");
    const profile = parseS3StoreUrl(out("pushUrl")).profile ?? "default";
    await minioAdmin.addUser(targetOf(minio), rootOf(minio), "nixreader", readonlyKey);
    await minioAdmin.attachPolicy(targetOf(minio), rootOf(minio), "nixreader", "readonly");
    fs.writeFileSync(file("readonly-credentials"), `[${profile}]\naws_access_key_id = nixreader\naws_secret_access_key = ${readonlyKey}\n`, {
      mode: 0o600,
    });
    const readonly = builderWith("readonly", { refreshAfterSec: 1, awsCredentialsFile: file("readonly-credentials") });
    build(["top3"], readonly);
    await sleep(2500);
    const state = await bucketState();
    const r = drain(readonly, `AWS_SHARED_CREDENTIALS_FILE=${file("aws-credentials")} ${pushViaFile()}`);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nix-cache: pushed 1 paths to s3://");
    expect(fs.readdirSync(queue())).toEqual([]);
    const d = await keysOf(dep);
    expect(r.stderr.split("\n").filter((l) => /^(nix-cache|pushViaFile):/.test(l))).toEqual([
      `nix-cache: refreshing cached paths stopped: refreshing ${d.nar}: HTTP 403 (AccessDenied); the push itself succeeded`,
    ]);
    expect(r.stdout).not.toContain("refreshed");
    const after = await bucketState();
    for (const key of [d.narinfo, d.nar]) expect([key, after.get(key)]).toEqual([key, state.get(key)]);
    expect(`${r.stdout}${r.stderr}`.includes(readonlyKey)).toBe(false);
  });
});

describe("the GC keeps what the drain refreshed", () => {
  test("a path the builder pushes again (already cached) survives a GC that collects its untouched sibling", async () => {
    // Two unrelated paths pushed long ago: the builder still builds `alive`, nobody builds `untouched`.
    fs.writeFileSync(file("pair.nix"), `{ alive = derivation { name = "alive"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo alive ${NONCE} > $out" ]; };
  untouched = derivation { name = "untouched"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo untouched ${NONCE} > $out" ]; }; }`);
    const r0 = spawnSync("nix-build", ["--store", store(), "--no-out-link", file("pair.nix")], { env: nixEnv(file("home-build"), [`secret-key-files = ${file("signing-key")}`]), encoding: "utf8" });
    expect(r0.status).toBe(0);
    const [alive, untouched] = r0.stdout.trim().split("\n");
    const push = spawnSync("sh", ["-c", `${pushViaFile()} "$@"`, "push", alive, untouched], {
      cwd: PROJECT_DIR,
      env: { ...nixEnv(file("home-push"), [`store = ${store()}`]), NIX_CACHE_PUSH_URL: out("pushUrl"), AWS_SHARED_CREDENTIALS_FILE: file("aws-credentials") },
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(push.status).toBe(0);
    await sleep(1_500);
    // The builder builds `alive` again (the same output, already cached): the hook queues it, the drain's push
    // skips it as Nix does, and the drain refreshes it.
    const refreshedAt = Date.now() - 500;
    fs.writeFileSync(path.join(queue(), `${Date.now()}000000-alive`), `out ${alive}\n`);
    const r = drain(refreshing);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^nix-cache: refreshed 1 of 1 cached paths$/m);
    // Keep what was touched since just before the drain started: after the pair's push, before the refresh
    // (a fixed time, so the GC's own start-up, however slow, moves nothing).
    const gc = await startGcCli(t, keptSince(refreshedAt)).done;
    expect(gc.status).toBe(0);
    expect(gc.stdout).toMatch(/^gc: kept \d+ paths .*, deleted [1-9]\d* paths/m);
    const a = await keysOf(alive);
    const state = await bucketState();
    expect([state.has(a.narinfo), state.has(a.nar)]).toEqual([true, true]);
    expect(state.has(narinfoKey(untouched))).toBe(false);
    // A fresh host copies the refreshed path from the cache into an empty store.
    const copied = spawnSync("nix", ["copy", "--from", out("substituterUrl"), "--to", file("store-host"), "--option", "trusted-public-keys", out("publicKey"), alive], {
      env: nixEnv(file("home-host")),
      encoding: "utf8",
    });
    expect([copied.status, copied.stderr]).toEqual([0, expect.not.stringContaining("error")]);
  });
});

describe("over https with the cache's own CA", () => {
  beforeAll(async () => {
    await tearDown();
    await setUp(true);
  });

  test("the drain refreshes over https, trusting the CA bundle of sslCertFile (NIX_SSL_CERT_FILE)", async () => {
    expect(out("substituterUrl").startsWith("https://")).toBe(true);
    const [d] = build(["dep"]);
    const push = pushByHand([d]);
    expect([push.status, push.stdout.includes("uploaded 2 files")]).toEqual([0, true]);
    await sleep(2500);
    const was = await bucketState();
    build(["top"], refreshing);
    const r = drain(refreshing);
    expect(r.stderr).not.toMatch(/^(nix-cache|pushViaFile):/m);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^nix-cache: refreshed [12] of 2 cached paths$/m);
    const keys = await keysOf(d);
    const now = await bucketState();
    for (const key of [keys.narinfo, keys.nar]) {
      expect(now.get(key)?.modified).toBeGreaterThan((was.get(key)?.modified ?? Infinity) + 1000);
      expect([key, now.get(key)?.etag]).toEqual([key, was.get(key)?.etag]);
    }
  });
});
