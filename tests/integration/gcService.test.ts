// The builder's GC script (lib/gc/bundle.ts's bundle of lib/gc/service.ts) as nix-cache-gc.service runs it: the one
// file written out and run by plain `node` (no ts-node, no node_modules, from a directory outside the project),
// configured only by its environment and an AWS credentials file, against a real MinIO (harness/minio.ts). The
// credentials are MinIO's root keys under the GC's profile: the GC user's policy is tested with the stack
// (tests/integration/gcIdentity.test.ts); here it is the script and its settings. Cases run in order on one bucket.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GeneratedPath, generatedPath, pushLikeNix } from "../../harness/cacheFill";
import { MinioServer, startMinio } from "../../harness/minio";
import { narinfoKey } from "../../lib/gc/plan";
import { gcScriptText } from "../../lib/gc/bundle";
import { checkClosures } from "../../lib/gc/run";
import { GC_ENV } from "../../lib/gc/service";
import { S3Rest } from "../../lib/s3/client";
import { keptSince } from "../support/gcCli";

const BUCKET = "nix-cache";
const PROFILE = "nixgc";
const CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

let minio: MinioServer;
let root: S3Rest;
let work: string;
let script: string;
let credentials: string;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `node nix-cache-gc.js ARGS` with only the service's environment (plus PATH and HOME), as systemd runs it. */
function runScript(args: string[], over: Record<string, string | undefined> = {}): Promise<Run> {
  const env: Record<string, string> = {};
  const all: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: work,
    [GC_ENV.endpoint]: minio.endpoint,
    [GC_ENV.region]: "us-east-1",
    [GC_ENV.bucket]: BUCKET,
    [GC_ENV.retainDays]: "7",
    [GC_ENV.storeDir]: "/nix/store",
    [GC_ENV.credentialsFile]: credentials,
    [GC_ENV.profile]: PROFILE,
    ...over,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) env[k] = v;
  const child: ChildProcess = spawn(process.execPath, [script, ...args], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keysOf = (paths: readonly GeneratedPath[]) => paths.flatMap((p) => [narinfoKey(p.hash), p.narKey]);

async function presentKeys(keys: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const k of keys) if ((await root.head(k)) !== undefined) out.push(k);
  return out;
}

async function bucketKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of root.list()) keys.push(o.key);
  return keys.sort();
}


// An old closure, a shared path pushed with it, and a new closure that references the shared path.
const old = [generatedPath("old-0", ["old-0"]), generatedPath("old-1", ["old-1", "old-0"]), generatedPath("old-2", ["old-2", "old-1"])];
const shared = generatedPath("shared-0", ["shared-0"]);
const fresh = [generatedPath("new-0", ["new-0"]), generatedPath("new-1", ["new-1", "new-0", "shared-0"])];
let freshPushedAt = 0;

beforeAll(async () => {
  minio = await startMinio();
  root = new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, accessKey: minio.rootUser, secretKey: minio.rootPassword });
  expect(await root.makeBucket()).toBe("created");
  expect((await root.put("nix-cache-info", CACHE_INFO, { contentType: "text/x-nix-cache-info" })).outcome).toBe("written");

  // Outside the project: no node_modules above it for node to find.
  work = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-gc-service-"));
  script = path.join(work, "nix-cache-gc.js");
  fs.writeFileSync(script, gcScriptText());
  credentials = path.join(work, "nix-cache-gc-credentials");
  fs.writeFileSync(
    credentials,
    `[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = not-this-one\n\n[${PROFILE}]\naws_access_key_id = ${minio.rootUser}\naws_secret_access_key = ${minio.rootPassword}\n`,
    { mode: 0o600 },
  );

  expect(await pushLikeNix(root, [...old, shared])).toBe(4);
  // Ages a GC can tell apart: the new closure is pushed after freshPushedAt, the old one over a second before it.
  await sleep(1_500);
  freshPushedAt = Date.now() - 500;
  expect(await pushLikeNix(root, fresh)).toBe(2);
}, 120_000);

afterAll(async () => {
  root?.close();
  await minio?.destroy();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("nix-cache-gc.js run by plain node with the service's environment", () => {
  test("the script is not run from the project: it exists only in the temp directory, and node finds no node_modules there", () => {
    expect(path.relative(path.resolve(__dirname, "../.."), script).startsWith("..")).toBe(true);
    const ancestors = work.split(path.sep).map((_, i, parts) => parts.slice(0, i + 1).join(path.sep) || path.sep);
    expect(ancestors.filter((d) => fs.existsSync(path.join(d, "node_modules")))).toEqual([]);
  });

  test("--dry-run: reports the old closure as dead, deletes nothing", async () => {
    const before = await bucketKeys();
    const r = await runScript(["--dry-run", ...keptSince(freshPushedAt)]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain(`gc: bucket ${BUCKET} at ${minio.endpoint}, as ${minio.rootUser} (profile ${PROFILE})\n`);
    expect(r.stdout).toMatch(/^gc \(dry run\): would keep 3 paths and 3 NARs \([^)]*\), would delete 3 paths and 3 NARs \([^)]*\)$/m);
    expect(await bucketKeys()).toEqual(before);
  });

  test("a run collects the old closure, keeps the new one and the old path it references; exit 0, summary line, no secret", async () => {
    const r = await runScript(keptSince(freshPushedAt));
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/^gc: kept 3 paths and 3 NARs \([^)]*\), deleted 3 paths and 3 NARs \([^)]*\)$/m);
    expect(r.stdout.split("\n").filter((l) => l !== "").pop()).toMatch(/^gc: kept 3 paths/);
    expect([r.stdout.includes(minio.rootPassword), r.stderr.includes(minio.rootPassword)]).toEqual([false, false]);
    expect(await presentKeys(keysOf(old))).toEqual([]);
    expect(await presentKeys(keysOf([...fresh, shared]))).toEqual(keysOf([...fresh, shared]));
    expect((await root.get("nix-cache-info"))?.body.toString()).toBe(CACHE_INFO);
    // No lease left behind, and every closure whole.
    expect(await root.head("gc/lease")).toBeUndefined();
    expect((await checkClosures(root)).broken).toEqual([]);
  });

  test("pins through the service: pin the new closure, list it", async () => {
    const pin = await runScript(["pin", "laptop", fresh[1].storePath]);
    expect([pin.status, pin.stderr]).toEqual([0, ""]);
    expect(pin.stdout).toContain(`gc: pinned ${fresh[1].storePath} as laptop`);
    const pins = await runScript(["pins"]);
    expect([pins.status, pins.stdout]).toEqual([0, `laptop\t${fresh[1].storePath}\ngc: 1 pin\n`]);
    // With nothing recent kept, the pin keeps the whole new closure (shared-0 included).
    const r = await runScript(["--retain-days", "0", "--grace", "0s"]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/^gc: kept 3 paths and 3 NARs \([^)]*\), deleted 0 paths and 0 NARs \(0 B\)$/m);
    expect(await presentKeys(keysOf([...fresh, shared]))).toEqual(keysOf([...fresh, shared]));
  });

  test("NIX_CACHE_GC_BUCKET missing: exit 2, one line naming it, nothing touched", async () => {
    const before = await bucketKeys();
    const r = await runScript(["--retain-days", "0", "--grace", "0s"], { [GC_ENV.bucket]: undefined });
    expect([r.status, r.stdout, r.stderr]).toEqual([2, "", `nix-cache-gc: ${GC_ENV.bucket} is not set: the builder module's nix-cache-gc.service sets it\n`]);
    expect(await bucketKeys()).toEqual(before);
  });

  test("wrong keys in the profile: exit 2 naming the bucket and endpoint and S3's refusal, never the key", async () => {
    const wrong = path.join(work, "wrong-credentials");
    fs.writeFileSync(wrong, `[${PROFILE}]\naws_access_key_id = ${minio.rootUser}\naws_secret_access_key = wrong-secret-4711\n`, { mode: 0o600 });
    const r = await runScript(["--dry-run"], { [GC_ENV.credentialsFile]: wrong });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`nix-cache-gc: cannot work on bucket ${BUCKET} at ${minio.endpoint}: `);
    expect(r.stderr).toContain("SignatureDoesNotMatch");
    expect([r.stderr.includes("wrong-secret-4711"), r.stderr.includes(minio.rootPassword)]).toEqual([false, false]);
  });
});
