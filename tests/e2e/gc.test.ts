// The GC with real Nix 2.8: a builder builds a closure (app → dep) and an unrelated sibling, signs them with the
// stack's key and pushes them the way `nix copy --to pushUrl` does; the closure is pinned with `npm run gc -- pin`;
// a GC that keeps nothing but pins collects the sibling; then a fresh host with an empty store copies the kept
// closure from the cache (`nix copy --from`, which fails outright on any missing narinfo or NAR of the closure)
// and realises it by substitution, while the collected sibling is no longer served.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { AWS_CREDENTIALS_FILE_NAME } from "../../lib/hosts/builderModule";
import { narinfoKey } from "../../lib/gc/plan";
import { checkClosures } from "../../lib/gc/run";
import { S3Rest } from "../../lib/s3/client";
import { MinioServer } from "../../harness/minio";
import { nixEnv } from "../../harness/nix";
import { deployCache, PROJECT_DIR, removeDeployment, TestStack } from "../../harness/stack";
import { startGcCli } from "../support/gcCli";
import { NixClient, requireNix } from "./nixEnv";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let root: string;
let builder: NixClient;
let store: string;
let work: string;
let cache: S3Rest;
const out = (name: string): string => String(outputs[name]?.value);
const nonce = crypto.randomBytes(6).toString("hex");
const built: Record<string, string> = {};

const EXPRESSION = `
let
  mk = name: script: derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; };
  dep = mk "gc-dep" "echo dep ${nonce} > $out";
in {
  inherit dep;
  app = mk "gc-app" "echo \${dep} > $out";
  sibling = mk "gc-sibling" "echo sibling ${nonce} > $out";
}
`;

const hashOf = (storePath: string) => path.basename(storePath).slice(0, 32);
const runGc = (args: string[]) => startGcCli(t, args).done;

/** Pushes a closure as the builder's drain does where Nix has no S3 store (tests/support/pushViaFile.ts). */
function push(storePath: string): void {
  const credentials = path.join(root, AWS_CREDENTIALS_FILE_NAME);
  fs.writeFileSync(credentials, out("awsCredentials"), { mode: 0o600 });
  const r = spawnSync("node", ["-r", "ts-node/register/transpile-only", path.join(PROJECT_DIR, "tests/support/pushViaFile.ts"), storePath], {
    cwd: PROJECT_DIR,
    env: { ...nixEnv(path.join(root, "push-home"), [`store = ${store}`]), NIX_CACHE_PUSH_URL: out("pushUrl"), AWS_SHARED_CREDENTIALS_FILE: credentials },
    encoding: "utf8",
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`push of ${storePath} failed: ${r.stderr}`);
}

/** A fresh host with an empty store. */
let hosts = 0;
function freshHost(): { host: NixClient; hostStore: string } {
  hosts++;
  return { host: new NixClient(root, `host-${hosts}`), hostStore: path.join(root, `store-host-${hosts}`) };
}

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-gc-"));
  ({ minio, t, outputs } = await deployCache("e2e-gc"));
  cache = new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket: "nix-cache", accessKey: minio.rootUser, secretKey: minio.rootPassword });
  builder = new NixClient(root, "builder");
  store = path.join(root, "store-builder");
  work = path.join(root, "work");
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, "gc.nix"), EXPRESSION);
  const keyFile = path.join(root, "secret.key");
  fs.writeFileSync(keyFile, out("secretKey"), { mode: 0o600 });
  for (const attr of ["app", "sibling"]) {
    built[attr] = builder.ok("nix-build", ["--store", store, "--no-out-link", "-A", attr, "gc.nix"], work).trim();
    builder.ok("nix", ["store", "sign", "--store", store, "--key-file", keyFile, "--recursive", built[attr]]);
    push(built[attr]);
  }
  built.dep = builder.ok("nix-store", ["--store", store, "--query", "--references", built.app]).trim();
  expect(built.dep).toMatch(/-gc-dep$/);
}, 600_000);

afterAll(async () => {
  cache?.close();
  await removeDeployment(t, minio);
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("a GC that keeps only pinned closures collects the sibling and keeps the pinned closure whole", async () => {
  for (const p of Object.values(built)) expect(await cache.head(narinfoKey(hashOf(p)))).toBeDefined();
  const pin = await runGc(["pin", "app", built.app]);
  expect(pin.status).toBe(0);
  const gc = await runGc(["--retain-days", "0", "--grace", "0s"]);
  expect(gc.stdout).toMatch(/^gc: kept 2 paths and 2 NARs \(.*\), deleted 1 paths and 1 NARs \(.*\)$/m);
  expect(gc.status).toBe(0);
  expect(await cache.head(narinfoKey(hashOf(built.sibling)))).toBeUndefined();
  expect((await checkClosures(cache)).broken).toEqual([]);
}, 300_000);

test("a fresh host copies the kept closure from the cache into an empty store, and substitutes it", () => {
  const { host, hostStore } = freshHost();
  const copied = host.run("nix", [
    "copy", "--from", out("substituterUrl"), "--to", hostStore, "--option", "trusted-public-keys", out("publicKey"), built.app,
  ]);
  expect(copied.stderr).not.toContain("error");
  expect(copied.status).toBe(0);
  expect(fs.readFileSync(path.join(hostStore, built.app), "utf8")).toBe(`${built.dep}\n`);
  expect(fs.readFileSync(path.join(hostStore, built.dep), "utf8")).toBe(`dep ${nonce}\n`);

  const sub = freshHost();
  const realised = sub.host.run("nix-store", [
    "--store", sub.hostStore, "-r", built.app,
    "--option", "substituters", out("substituterUrl"), "--option", "trusted-public-keys", out("publicKey"),
  ]);
  expect(realised.status).toBe(0);
  expect(realised.stdout.trim()).toBe(built.app);
});

test("the collected sibling is no longer served: copying it fails", () => {
  const { host, hostStore } = freshHost();
  const r = host.run("nix", ["copy", "--from", out("substituterUrl"), "--to", hostStore, "--option", "trusted-public-keys", out("publicKey"), built.sibling]);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/is required, but there is no substituter that can build it|is not valid/);
});
