// Rotating the signing key with real Nix 2.8 hosts, as docs/operations.md's runbook does it: a path pushed and signed
// with key 1; rotate (key 2 active, key 1 kept); a host trusting only key 2 is refused that path until
// `npm run resign`, then pulls it; a host trusting only key 1 still pulls paths built after the rotation (the
// builder signs with both, with signCommand as printed); after retiring key 1 the generated module trusts only
// key 2 and a host configured from it pulls everything. Each pull is a fresh host (no narinfo cache).
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { binaryCacheContentType, parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { s3Client } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { deployCache, PROJECT_DIR, removeDeployment, TestStack } from "../../harness/stack";
import { clientModuleSettings, NixClient, payloadExpression, requireNix, signAsPrinted } from "./nixEnv";

const K1 = "s3.homelab.local-1";
const K2 = "s3.homelab.local-2";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let root: string;
let builder: NixClient;
let store: string;
let work: string;
let hosts = 0;
const out = (name: string): string => String(outputs[name]?.value);
const paths: Record<string, string> = {};

/** The keys the generated client module trusts, in its order. */
const moduleKeys = (): string[] => clientModuleSettings(out("nixosModule")).trustedKeys;

/** Builds a tiny unique path in the builder's store. */
function build(name: string): string {
  fs.writeFileSync(path.join(work, `${name}.nix`), payloadExpression(`${name}-${crypto.randomBytes(6).toString("hex")}`));
  const built = builder.ok("nix-build", ["--store", store, "--out-link", path.join(work, "result"), `${name}.nix`], work).trim();
  paths[name] = built;
  return built;
}

/** Pushes a path as `nix copy --to pushUrl` does (Nix 2.8 has no S3: file:// then the builder's upload). */
async function push(storePath: string): Promise<void> {
  const target = parseS3StoreUrl(out("pushUrl"));
  const creds = parseAwsCredentials(out("awsCredentials")).get(target.profile ?? "default");
  const dir = fs.mkdtempSync(path.join(root, "push-"));
  builder.ok("nix", ["copy", "--store", store, "--to", `file://${dir}?compression=${target.compression}`, storePath]);
  const s3 = s3Client({ endpoint: target.endpoint, region: target.region }, { accessKey: creds?.accessKey ?? "", secretKey: creds?.secretKey ?? "" });
  const files = fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
  const ordered = [...files.filter((k) => !k.endsWith(".narinfo") && k !== "nix-cache-info"), ...files.filter((k) => k.endsWith(".narinfo"))];
  for (const key of ordered) await s3.fPutObject(target.bucket, key, path.join(dir, key), { "Content-Type": binaryCacheContentType(key) });
}

/** A fresh host pulls `storePath` from the cache trusting exactly `keys`. */
function pull(storePath: string, keys: string[]): { ok: boolean; stderr: string } {
  const host = new NixClient(root, `host-${++hosts}`);
  const r = host.run("nix", ["copy", "--from", out("substituterUrl"), "--to", path.join(root, `store-host-${hosts}`), "--option", "trusted-public-keys", keys.join(" "), storePath]);
  return { ok: r.status === 0, stderr: r.stderr };
}

function resign(args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("node", ["-r", "ts-node/register/transpile-only", "scripts/resign.ts", "--stack", t.stack.name, ...args], { cwd: PROJECT_DIR, env: { ...process.env, ...t.env }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

const rotateUp = async () => {
  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  outputs = await t.stack.outputs();
};

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-rotate-"));
  ({ minio, t, outputs } = await deployCache("e2e-rotate"));
  builder = new NixClient(root, "builder");
  store = path.join(root, "store-builder");
  work = path.join(root, "work");
  fs.mkdirSync(work);
});

afterAll(async () => {
  await removeDeployment(t, minio);
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

let key1 = "";
let key2 = "";

test("before the rotation: a path signed with key 1 (signCommand as printed) and pushed; a host trusting key 1 pulls it", async () => {
  key1 = out("publicKey");
  expect(key1.startsWith(`${K1}:`)).toBe(true);
  build("before");
  expect(signAsPrinted(builder, outputs, store, work)).toContain("added 1 signatures");
  await push(paths.before);
  expect(pull(paths.before, [key1]).ok).toBe(true);
});

test("step 1 (key 2 active, key 1 kept): a host trusting only key 2 is refused the old path until resign, then pulls it", async () => {
  await t.stack.setConfig("nix-cache:keyName", { value: K2 });
  await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: K1 }, true);
  await rotateUp();
  key2 = out("publicKey");
  expect(key2.startsWith(`${K2}:`)).toBe(true);
  expect(outputs.trustedPublicKeys.value).toEqual([key2, key1]);
  expect(moduleKeys()).toEqual([key2, key1]);

  const refused = pull(paths.before, [key2]);
  expect(refused.ok).toBe(false);
  expect(refused.stderr).toMatch(/lacks a valid signature|not signed by any of the keys/);

  const first = await resign();
  expect(first.code).toBe(0);
  expect(first.stdout + first.stderr).toContain("resign: 1 signed, 0 already signed, 0 refused");
  expect(pull(paths.before, [key2]).ok).toBe(true);
  // Hosts still trusting only key 1 keep pulling it: its signature is untouched.
  expect(pull(paths.before, [key1]).ok).toBe(true);
  const again = await resign();
  expect(again.code).toBe(0);
  expect(again.stdout + again.stderr).toContain("resign: 0 signed, 1 already signed, 0 refused");
});

test("during the rotation the builder signs with both keys: hosts trusting only key 1, or only key 2, pull new paths", async () => {
  build("during");
  const signed = signAsPrinted(builder, outputs, store, work);
  expect(signed.match(/added 1 signatures/g)).toHaveLength(2);
  await push(paths.during);
  expect(pull(paths.during, [key1]).ok).toBe(true);
  expect(pull(paths.during, [key2]).ok).toBe(true);
});

test("step 2 (retire key 1): the module trusts only key 2, a host configured from it pulls every path; new paths carry key 2 only", async () => {
  await t.stack.removeConfig("nix-cache:previousKeyNames");
  await rotateUp();
  expect(outputs.trustedPublicKeys.value).toEqual([key2]);
  expect(moduleKeys()).toEqual([key2]);
  for (const p of [paths.before, paths.during]) expect(pull(p, moduleKeys()).ok).toBe(true);

  build("after");
  expect(signAsPrinted(builder, outputs, store, work).match(/added 1 signatures/g)).toHaveLength(1);
  await push(paths.after);
  expect(pull(paths.after, moduleKeys()).ok).toBe(true);
  expect(pull(paths.after, [key1]).ok).toBe(false);
  // No drift after the whole rotation (expectNoChanges makes any change an error).
  await expect(t.stack.preview({ refresh: true, expectNoChanges: true })).resolves.toBeDefined();
});
