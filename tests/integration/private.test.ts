// A private cache (nix-cache:access=private) on a real MinIO, in the user's order: up → anonymous requests refused,
// the reader reads and nothing more → the outputs as hosts consume them → the read proxy served from the stack
// (`npm run proxy`), a host revoked → an anonymous policy set by hand is drift that `up --refresh` removes →
// switching to public and back → a clean drift check. One stack for all: each case starts where the last ended.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { freePort, MinioServer, startMinio } from "../../harness/minio";
import { mcFor } from "../../harness/mc";
import { backendText, createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { S3Error, S3Rest } from "../../lib/s3/client";
import { parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { adminRequest } from "../../providers/minioClients";
import { BUCKET, changesOf, codeOf, driftPreview, rootS3, stateFingerprint, targetOf } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let proxyPort: number;

const HOSTS = ["desk", "laptop"];

const text = (name: string): string => {
  const v = outputs[name]?.value;
  if (typeof v !== "string") throw new Error(`output ${name} is ${JSON.stringify(typeof v)}, not text`);
  return v;
};
const record = (name: string): Record<string, string> => {
  const v = outputs[name]?.value as unknown;
  return (typeof v === "string" ? JSON.parse(v) : v) as Record<string, string>;
};

/** The cache bucket as an S3 client with the given credentials. */
const clientAs = (accessKey: string, secretKey: string, bucket = BUCKET) =>
  new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket, accessKey, secretKey });
const reader = () => clientAs(text("readerAccessKey"), text("readerSecretKey"));

/** An unauthenticated request, as a Nix client without credentials makes it. */
async function anonymous(method: "GET" | "HEAD", pathAndQuery: string): Promise<number> {
  const res = await fetch(`${minio.endpoint}${pathAndQuery}`, { method });
  await res.arrayBuffer();
  return res.status;
}

/** The S3 error code of a call that must fail, or "ok". */
async function s3Code(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
}

async function up(): Promise<void> {
  const res = await t.stack.up();
  expect(res.summary.result).toBe("succeeded");
  outputs = await t.stack.outputs();
}

beforeAll(async () => {
  minio = await startMinio();
  proxyPort = await freePort();
  t = await createTestStack("it-private", minioConfig(minio, { access: "private", proxyUrl: `http://127.0.0.1:${proxyPort}` }));
  for (const [i, host] of HOSTS.entries()) await t.stack.setConfig(`nix-cache:readerHosts[${i}]`, { value: host }, true);
  await up();
  // Something cached, pushed by the builder as Nix does.
  await clientAs(text("builderAccessKey"), text("builderSecretKey")).put("aaaa.narinfo", "StorePath: /nix/store/aaaa-x\n", { contentType: "text/x-nix-narinfo" });
  // Another bucket on the same MinIO, which the reader must not reach.
  await rootS3(minio).makeBucket("other-bucket");
  await rootS3(minio).putObject("other-bucket", "secret.txt", "other");
});

afterAll(async () => {
  await t?.remove();
  await minio?.destroy();
});

test("anonymous GET, HEAD and LIST are refused; the reader reads, gets 404 for a miss, and can do nothing else", async () => {
  expect(await anonymous("GET", `/${BUCKET}/nix-cache-info`)).toBe(403);
  expect(await anonymous("HEAD", `/${BUCKET}/aaaa.narinfo`)).toBe(403);
  expect(await anonymous("GET", `/${BUCKET}?list-type=2`)).toBe(403);

  const r = reader();
  expect((await r.get("nix-cache-info"))?.body.toString()).toContain("StoreDir: /nix/store");
  expect((await r.get("aaaa.narinfo"))?.body.toString()).toContain("StorePath: /nix/store/aaaa-x");
  // ListBucket: a miss is the 404 Nix needs, not Access Denied.
  expect(await r.get("bbbb.narinfo")).toBeUndefined();
  expect(await s3Code(r.put("cccc.narinfo", "StorePath: /nix/store/cccc-y\n"))).toBe("AccessDenied");
  expect(await s3Code(r.delete("aaaa.narinfo"))).toBe("AccessDenied");
  expect(await s3Code(clientAs(text("readerAccessKey"), text("readerSecretKey"), "other-bucket").get("secret.txt"))).toBe("AccessDenied");
  await expect(adminRequest(targetOf(minio), { accessKey: text("readerAccessKey"), secretKey: text("readerSecretKey") }, "GET", "list-users", {})).rejects.toThrow(
    /\(AccessDenied\)/,
  );
  // Nothing the refusals touched changed.
  expect((await rootS3(minio).statObject(BUCKET, "aaaa.narinfo")).size).toBeGreaterThan(0);
  expect(await codeOf(rootS3(minio).statObject(BUCKET, "cccc.narinfo"))).toBe("NotFound");
});

test("the outputs as hosts consume them: an AWS credentials file, the s3:// URL, per-host tokens, netrc lines and hashes", async () => {
  expect(text("access")).toBe("private");
  const readerUser = text("readerAccessKey");
  expect(readerUser).toBe("nixreader");
  // The credentials file as botocore reads it (Python's configparser), compared inside Python: nothing printed.
  const check = spawnSync(
    "python3",
    ["-c", "import configparser,sys; c=configparser.ConfigParser(); c.read_string(sys.stdin.read()); s=c[sys.argv[1]]; print(s['aws_access_key_id'] == sys.argv[1], s['aws_secret_access_key'] == sys.argv[2])", readerUser, text("readerSecretKey")],
    { input: text("readerCredentials"), encoding: "utf8" },
  );
  expect(check.stdout.trim()).toBe("True True");
  // The query parameters Nix's S3 binary cache store knows (S3BinaryCacheStoreConfig): endpoint, region, profile, scheme.
  const url = new URL(text("readerSubstituterUrl"));
  expect(url.protocol).toBe("s3:");
  expect([...url.searchParams.keys()].filter((k) => !["endpoint", "region", "profile", "scheme", "compression", "parallel-compression"].includes(k))).toEqual([]);
  expect(parseS3StoreUrl(text("readerSubstituterUrl"))).toMatchObject({ bucket: BUCKET, endpoint: minio.endpoint, region: "us-east-1", profile: readerUser });

  const tokens = record("readerTokens");
  expect(Object.keys(tokens).sort()).toEqual(HOSTS);
  for (const token of Object.values(tokens)) expect(token).toMatch(/^[A-Za-z0-9]{40}$/);
  expect(tokens.desk).not.toBe(tokens.laptop);
  const netrc = record("netrc");
  for (const host of HOSTS) expect(netrc[host]).toBe(`machine 127.0.0.1 login ${host} password ${tokens[host]}`);
  const sha = (s: string) => crypto.createHash("sha256").update(s).digest("hex");
  expect(text("proxyTokenHashes")).toBe(HOSTS.map((h) => `${h} sha256:${sha(tokens[h])}\n`).join(""));
  expect(text("proxyUrl")).toBe(`http://127.0.0.1:${proxyPort}`);
  expect(text("nixosModule")).toContain(text("readerSubstituterUrl"));
  expect(text("proxyClientModule")).toContain(`http://127.0.0.1:${proxyPort}`);

  for (const name of ["readerSecretKey", "readerCredentials", "readerTokens", "netrc"]) expect([name, outputs[name].secret]).toEqual([name, true]);
  for (const name of ["readerAccessKey", "readerSubstituterUrl", "proxyUrl", "proxyTokenHashes", "nixosModule"]) expect([name, outputs[name].secret]).toEqual([name, false]);
  const state = backendText(t.backendDir);
  const leaks = [["reader password", text("readerSecretKey")], ...HOSTS.map((h) => [`token of ${h}`, tokens[h]])].filter(([, secret]) => state.includes(secret));
  expect(leaks.map(([what]) => what)).toEqual([]);
});

/** `npm run proxy` for the stack, until it says it serves; killed by the caller. */
async function startProxyFromStack(): Promise<ChildProcess> {
  const child = spawn("npm", ["run", "-s", "proxy", "--", "--listen", `127.0.0.1:${proxyPort}`, "--stack", t.stack.name], {
    cwd: PROJECT_DIR,
    env: { ...process.env, ...t.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let said = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer) => {
      said += b.toString();
      if (/proxy: serving/.test(said)) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`npm run proxy exited ${code}: ${said}`)));
  });
  return child;
}

const stopProxy = (child: ChildProcess) => {
  if (child.pid) process.kill(-child.pid, "SIGTERM");
};

/** curl through the proxy with a netrc file holding `lines`; the HTTP status. */
function curlStatus(lines: string[], key = "nix-cache-info"): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-netrc-"));
  try {
    const netrcFile = path.join(dir, "netrc");
    fs.writeFileSync(netrcFile, lines.map((l) => `${l}\n`).join(""), { mode: 0o600 });
    const r = spawnSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--netrc-file", netrcFile, `http://127.0.0.1:${proxyPort}/${key}`], { encoding: "utf8" });
    return Number(r.stdout);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("npm run proxy serves the stack: each host's netrc line reads; none or another's password is 401; a removed host is revoked", async () => {
  const netrc = record("netrc");
  let proxy = await startProxyFromStack();
  try {
    expect(curlStatus([netrc.laptop])).toBe(200);
    expect(curlStatus([netrc.desk], "aaaa.narinfo")).toBe(200);
    expect(curlStatus([])).toBe(401);
    expect(curlStatus([netrc.desk.replace(/password \S+/, `password ${record("readerTokens").laptop}`)])).toBe(401);
  } finally {
    stopProxy(proxy);
  }
  // Revoking desk: remove its name and run up; its token resource goes, laptop's stays.
  await t.stack.removeConfig("nix-cache:readerHosts");
  await t.stack.setConfig("nix-cache:readerHosts[0]", { value: "laptop" }, true);
  await up();
  expect(Object.keys(record("readerTokens"))).toEqual(["laptop"]);
  expect(record("netrc").laptop).toBe(netrc.laptop);
  proxy = await startProxyFromStack();
  try {
    expect(curlStatus([netrc.laptop])).toBe(200);
    expect(curlStatus([netrc.desk])).toBe(401);
  } finally {
    stopProxy(proxy);
  }
});

test("an anonymous 'download' policy set by hand is drift: preview --refresh shows it, up --refresh removes it", async () => {
  const mc = mcFor(minio);
  try {
    mc.run(["anonymous", "set", "download", `s3/${BUCKET}`]);
    expect(await anonymous("GET", `/${BUCKET}/nix-cache-info`)).toBe(200);
    const drift = await driftPreview(t.stack);
    expect(drift.failed).toBe(true);
    expect(drift.changes).toEqual({ "nix-cache-anonymous-policy": "update" });
    const res = await t.stack.up({ refresh: true });
    expect(res.summary.result).toBe("succeeded");
    expect(await anonymous("GET", `/${BUCKET}/nix-cache-info`)).toBe(403);
    expect(mc.json<{ permission: string }>(["anonymous", "get", `s3/${BUCKET}`]).permission).toBe("private");
  } finally {
    mc.remove();
  }
});

test("switching to public and back: hosts left in readerHosts are refused first; public reads anonymously with no reader; private again", async () => {
  // readerHosts on a public cache is a mistake: refused before anything changes.
  const before = await stateFingerprint(t.stack);
  await t.stack.setConfig("nix-cache:access", { value: "public" });
  await expect(t.stack.up()).rejects.toThrow(/nix-cache:readerHosts is set but nix-cache:access is "public"/);
  expect(await stateFingerprint(t.stack)).toBe(before);
  expect(await anonymous("GET", `/${BUCKET}/nix-cache-info`)).toBe(403);

  const oldReader = { accessKey: text("readerAccessKey"), secretKey: text("readerSecretKey") };
  await t.stack.removeConfig("nix-cache:readerHosts");
  await t.stack.removeConfig("nix-cache:proxyUrl");
  const events: Parameters<typeof changesOf>[0] = [];
  const res = await t.stack.up({ onEvent: (e) => events.push(e) });
  expect(res.summary.result).toBe("succeeded");
  outputs = await t.stack.outputs();
  const changes = changesOf(events);
  // The reader and its token go; the bucket policy becomes the anonymous grant; nothing cached is touched.
  expect(changes["nix-cache-anonymous-policy"]).toBe("update");
  expect(changes["nix-cache-reader-user"]).toBe("delete");
  expect(changes["nix-cache-reader-token-laptop"]).toBe("delete");
  expect(Object.values(changes).filter((op) => op !== "update" && op !== "delete")).toEqual([]);
  expect(Object.keys(changes).filter((n) => changes[n] === "delete" && !n.startsWith("nix-cache-reader"))).toEqual([]);
  expect(await anonymous("GET", `/${BUCKET}/aaaa.narinfo`)).toBe(200);
  expect(text("access")).toBe("public");
  expect(outputs.readerAccessKey).toBeUndefined();
  expect(outputs.netrc).toBeUndefined();
  expect(await s3Code(clientAs(oldReader.accessKey, oldReader.secretKey).get("aaaa.narinfo"))).toBe("InvalidAccessKeyId");

  await t.stack.setConfig("nix-cache:access", { value: "private" });
  await up();
  expect(await anonymous("GET", `/${BUCKET}/aaaa.narinfo`)).toBe(403);
  expect((await reader().get("aaaa.narinfo"))?.body.toString()).toContain("aaaa-x");
  expect(text("readerSecretKey")).not.toBe(oldReader.secretKey);
  expect(await driftPreview(t.stack)).toMatchObject({ failed: false, changes: {} });
});
