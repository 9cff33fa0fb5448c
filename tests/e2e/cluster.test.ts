// The cache on a 4-node erasure-coded MinIO (harness/minio.ts `nodes: 4`) with a real Nix 2.8: the builder
// builds a closure of two paths, signs it with the stack's key and pushes it through pushUrl (node 1); node 1
// is then killed, and a fresh host that trusts only publicKey pulls the whole signed closure through node 3.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { binaryCacheContentType, parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { s3Client } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { closureExpression, NixClient, requireNix } from "./nixEnv";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let root: string;
const out = (name: string): string => String(outputs[name]?.value);
const nonce = crypto.randomBytes(8).toString("hex");

function listFiles(dir: string, prefix = ""): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-cluster-"));
  ({ minio, t, outputs } = await deployCache("e2e-cluster", {}, undefined, { nodes: 4 }));
});

afterAll(async () => {
  await removeDeployment(t, minio);
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("a signed closure pushed through node 1 is pulled by a real Nix through node 3 after node 1 died", async () => {
  // The builder: build, sign every path of the closure with the stack's key, push as pushUrl says.
  const builder = new NixClient(root, "builder");
  const store = path.join(root, "store-builder");
  const work = path.join(root, "work");
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, "closure.nix"), closureExpression(nonce));
  const top = builder.ok("nix-build", ["--store", store, "--out-link", path.join(work, "result"), "closure.nix"], work).trim();
  const closure = builder.ok("nix-store", ["--store", store, "-qR", top]).trim().split("\n").sort();
  expect(closure).toHaveLength(2);
  const keyFile = path.join(root, "secret.key");
  fs.writeFileSync(keyFile, out("secretKey"), { mode: 0o600 });
  const signed = builder.run("nix", ["store", "sign", "--store", store, "--key-file", keyFile, "--recursive", top]);
  expect(signed.stderr).toContain("added 2 signatures");

  // Nix 2.8 here has no S3 store: nix copy to a directory with pushUrl's compression, then the builder's
  // credentials upload it through pushUrl's endpoint (node 1), NARs before narinfos, as Nix's S3 store does.
  const target = parseS3StoreUrl(out("pushUrl"));
  expect(target.endpoint).toBe(minio.nodes[0].endpoint);
  const level = target.params["compression-level"];
  const dir = path.join(root, "push");
  builder.ok("nix", ["copy", "--store", store, "--to", `file://${dir}?compression=${target.compression}${level === undefined ? "" : `&compression-level=${level}`}`, top]);
  const creds = parseAwsCredentials(out("awsCredentials")).get(target.profile ?? "default");
  const s3 = s3Client({ endpoint: target.endpoint, region: target.region }, { accessKey: creds?.accessKey ?? "", secretKey: creds?.secretKey ?? "" });
  const files = listFiles(dir).filter((k) => k !== "nix-cache-info");
  for (const key of [...files.filter((k) => !k.endsWith(".narinfo")), ...files.filter((k) => k.endsWith(".narinfo"))]) {
    await s3.fPutObject(target.bucket, key, path.join(dir, key), { "Content-Type": binaryCacheContentType(key) });
  }
  expect(files.filter((k) => k.endsWith(".narinfo"))).toHaveLength(2);

  // Node 1, the stack's endpoint and the node that took the upload, dies.
  await minio.nodes[0].kill();
  expect((await fetch(`${minio.nodes[0].endpoint}/minio/health/live`).catch(() => undefined))?.status).toBeUndefined();

  // A fresh host that trusts only publicKey substitutes the closure through node 3.
  const survivor = `${minio.nodes[2].endpoint}/${target.bucket}`;
  expect(survivor).toBe(out("substituterUrl").replace(minio.nodes[0].endpoint, minio.nodes[2].endpoint));
  const host = new NixClient(root, "host");
  const hostStore = path.join(root, "store-host");
  const pulled = host.run("nix", ["copy", "--from", survivor, "--to", hostStore, "--option", "trusted-public-keys", out("publicKey"), top]);
  expect(pulled.stderr).not.toMatch(/error|warning/i);
  expect(pulled.status).toBe(0);
  for (const p of closure) expect(fs.existsSync(path.join(hostStore, p))).toBe(true);
  expect(fs.readFileSync(path.join(hostStore, top), "utf8").trim()).toBe(closure.find((p) => p !== top));
  const info = JSON.parse(host.ok("nix", ["path-info", "--store", hostStore, "--sigs", "--json", "-r", top])) as { path: string; signatures?: string[] }[];
  const keyName = out("publicKey").split(":")[0];
  expect(info.map((i) => i.path).sort()).toEqual(closure);
  for (const i of info) expect(i.signatures?.some((s) => s.startsWith(`${keyName}:`))).toBe(true);

  // Under another key of the same name the same survivor's closure is refused: the signatures let it in.
  const other = new NixClient(root, "other");
  const otherKey = other.ok("nix", ["key", "convert-secret-to-public"], undefined, other.ok("nix", ["key", "generate-secret", "--key-name", keyName])).trim();
  const refused = other.run("nix", ["copy", "--from", survivor, "--to", path.join(root, "store-other"), "--option", "trusted-public-keys", otherKey, top]);
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toContain("lacks a valid signature");
});
