// The cache proven with a real Nix client configured only from the stack outputs: deploy → build a tiny
// input-addressed path → sign it with the printed signCommand → push it the way `nix copy --to pushUrl` does →
// pull it into an empty store trusting only publicKey; refuse it under another key; fail as "not a binary
// cache" without nix-cache-info; work again after `pulumi up --refresh`.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { DEFAULT_SECRET_KEY_FILE, PUSH_COMPRESSION, PUSH_COMPRESSION_LEVEL } from "../../lib/hosts/hostConfig";
import { binaryCacheContentType, parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { s3Client } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { clientModuleSettings, NixClient, payloadExpression, requireNix } from "./nixEnv";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let root: string;
const out = (name: string): string => String(outputs[name]?.value);
const nonce = crypto.randomBytes(8).toString("hex");
/** The built store path; set by the first test, used by the rest. */
let storePath = "";

/** What a NixOS host gets from the nixosModule output: the substituter and the one trusted key. */
function hostSettings(): { substituter: string; trustedKey: string } {
  const { substituters, trustedKeys } = clientModuleSettings(out("nixosModule"));
  if (substituters.length !== 1 || trustedKeys.length !== 1) throw new Error(`nixosModule output names more than one substituter or key:\n${out("nixosModule")}`);
  return { substituter: substituters[0], trustedKey: trustedKeys[0] };
}

function listFiles(dir: string, prefix = ""): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

/** A fresh host pulls `storePath` into an empty store with `nix copy --from`, trusting `trustedKey` only. */
function pull(name: string, trustedKey: string) {
  const client = new NixClient(root, name);
  const store = path.join(root, `store-${name}`);
  const result = client.run("nix", [
    "copy", "--from", hostSettings().substituter, "--to", store,
    "--option", "trusted-public-keys", trustedKey, storePath,
  ]);
  return { result, file: path.join(store, storePath) };
}

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-"));
  ({ minio, t, outputs } = await deployCache("e2e-nix"));
});

afterAll(async () => {
  await removeDeployment(t, minio);
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("a real Nix client and builder, configured only from the stack outputs", () => {
  test("the builder builds, signs with signCommand as printed, and pushes as pushUrl says", async () => {
    const builder = new NixClient(root, "builder");
    const store = path.join(root, "store-builder");
    const work = path.join(root, "work");
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, "payload.nix"), payloadExpression(nonce));
    storePath = builder.ok("nix-build", ["--store", store, "--out-link", path.join(work, "result"), "payload.nix"], work).trim();
    expect(storePath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-payload$/);

    // The secret key goes where signCommand expects it, readable by the builder only.
    expect(out("signCommand")).toContain(DEFAULT_SECRET_KEY_FILE);
    const keyFile = path.join(builder.home, DEFAULT_SECRET_KEY_FILE.replace(/^~\//, ""));
    fs.mkdirSync(path.dirname(keyFile), { recursive: true });
    fs.writeFileSync(keyFile, out("secretKey"), { mode: 0o600 });
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);

    // signCommand exactly as printed, in the directory holding ./result; only the private store is added.
    const signed = builder.shell(`${out("signCommand")} --store ${store}`, work);
    expect(signed.stderr).toContain("added 1 signatures");
    expect(signed.status).toBe(0);
    const info = JSON.parse(builder.ok("nix", ["path-info", "--store", store, "--sigs", "--json", storePath])) as { signatures?: string[] }[];
    const keyName = out("publicKey").split(":")[0];
    expect(info[0].signatures?.some((s) => s.startsWith(`${keyName}:`))).toBe(true);

    // pushUrl names this cache: bucket, the endpoint the builder reaches, the region, the awsCredentials profile.
    const target = parseS3StoreUrl(out("pushUrl"));
    expect(target).toMatchObject({ bucket: "nix-cache", endpoint: minio.endpoint, region: "us-east-1", compression: PUSH_COMPRESSION });
    expect(target.params["compression-level"]).toBe(String(PUSH_COMPRESSION_LEVEL));
    const creds = parseAwsCredentials(out("awsCredentials")).get(target.profile ?? "default");
    expect(creds?.accessKey).toBe(out("builderAccessKey"));
    expect(out("pushCommand")).toBe(`nix copy --to '${out("pushUrl")}' ./result`);

    // Nix 2.8 here has no S3 support, so pushCommand runs with the s3:// URL swapped for a directory with the
    // same compression and level (Nix writes the same files for both), and the builder's credentials upload them.
    const dir = path.join(root, "push");
    const fileUrl = `file://${dir}?compression=${target.compression}&compression-level=${target.params["compression-level"]}`;
    const fileCommand = out("pushCommand").replace(`'${out("pushUrl")}'`, `'${fileUrl}'`);
    expect(fileCommand).toBe(`nix copy --to '${fileUrl}' ./result`);
    const pushed = builder.shell(`${fileCommand} --store ${store}`, work);
    expect(pushed.status).toBe(0);
    const files = listFiles(dir).filter((k) => k !== "nix-cache-info"); // the bucket has its own, as on S3
    const narinfo = fs.readFileSync(path.join(dir, `${path.basename(storePath).slice(0, 32)}.narinfo`), "utf8");
    expect(narinfo).toContain(`Compression: ${PUSH_COMPRESSION}`);
    expect(narinfo).toContain(`Sig: ${keyName}:`);
    const s3 = s3Client({ endpoint: target.endpoint, region: target.region }, { accessKey: creds?.accessKey ?? "", secretKey: creds?.secretKey ?? "" });
    // NARs before the narinfos that point at them, as Nix uploads.
    for (const key of [...files.filter((k) => !k.endsWith(".narinfo")), ...files.filter((k) => k.endsWith(".narinfo"))]) {
      await s3.fPutObject(target.bucket, key, path.join(dir, key), { "Content-Type": binaryCacheContentType(key) });
    }
    expect(files.some((k) => k.startsWith("nar/") && k.endsWith(".nar.zst"))).toBe(true);
  });

  test("a host trusting only publicKey copies and substitutes the path, with the right content", () => {
    expect(storePath).not.toBe("");
    const { substituter, trustedKey } = hostSettings();
    expect(substituter).toBe(out("substituterUrl"));
    expect(trustedKey).toBe(out("publicKey"));

    const { result, file } = pull("client-copy", trustedKey);
    expect(result.stderr).not.toContain("error");
    expect(result.status).toBe(0);
    expect(fs.readFileSync(file, "utf8")).toBe(`hello ${nonce}\n`);

    // Substitution, as a NixOS host realises a path it needs.
    const host = new NixClient(root, "client-substitute");
    const store = path.join(root, "store-client-substitute");
    const realised = host.run("nix-store", [
      "--store", store, "-r", storePath,
      "--option", "substituters", substituter, "--option", "trusted-public-keys", trustedKey,
    ]);
    expect(realised.status).toBe(0);
    expect(realised.stdout.trim()).toBe(storePath);
    expect(fs.readFileSync(path.join(store, storePath), "utf8")).toBe(`hello ${nonce}\n`);
  });

  test("a host trusting another key (same name) refuses the path", () => {
    const keygen = new NixClient(root, "keygen");
    const keyName = out("publicKey").split(":")[0];
    const otherSecret = keygen.ok("nix", ["key", "generate-secret", "--key-name", keyName]);
    const otherKey = keygen.ok("nix", ["key", "convert-secret-to-public"], undefined, otherSecret).trim();
    expect(otherKey).toMatch(new RegExp(`^${keyName.replace(/\./g, "\\.")}:`));
    expect(otherKey).not.toBe(out("publicKey"));

    const { result, file } = pull("client-other-key", otherKey);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("lacks a valid signature");
    expect(fs.existsSync(file)).toBe(false);
  });

  test("without nix-cache-info the host says it is not a binary cache; `up --refresh` repairs it", async () => {
    const admin = s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, { accessKey: minio.rootUser, secretKey: minio.rootPassword });
    await admin.removeObject("nix-cache", "nix-cache-info");

    const broken = pull("client-no-info", out("publicKey"));
    expect(broken.result.status).not.toBe(0);
    expect(broken.result.stderr).toContain("does not appear to be a binary cache");

    const up = await t.stack.up({ refresh: true });
    expect(up.summary.result).toBe("succeeded");
    expect((await fetch(`${out("substituterUrl")}/nix-cache-info`)).status).toBe(200);

    const repaired = pull("client-repaired", out("publicKey"));
    expect(repaired.result.status).toBe(0);
    expect(fs.readFileSync(repaired.file, "utf8")).toBe(`hello ${nonce}\n`);
  });
});
