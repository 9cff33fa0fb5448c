// Taking over the chapter's by-hand cache without one host noticing (issue 19), with real Nix 2.8 over https:
// the chapter's set-up made with mc and Nix verbatim (harness/chapter.ts) and a closure pushed its way; then one
// stack adopts it with the chapter's key imported and the builder's password kept, in one `up`. Host A keeps
// the chapter's configuration, host B takes only the stack's nixosModule: both pull what was pushed before the
// takeover and what is pushed after it (signed with the stack's key as signCommand says and uploaded with the
// builder's OLD credentials file, or by the chapter's builder left as it was), with no resign; a host trusting
// another key of the same name still refuses everything. Every pull is a fresh host (own narinfo cache).
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { parseAwsCredentials } from "../../lib/s3/pushTarget";
import { buildChapterCache, CHAPTER_BUCKET, CHAPTER_KEY_NAME, ChapterCache, pushAsChapter, pushWithStandIn } from "../../harness/chapter";
import { nixEnv } from "../../harness/nix";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, TestStack } from "../../harness/stack";
import { rootS3 } from "../integration/helpers";
import { clientModuleSettings, closureExpression, NixClient, payloadExpression, requireNix, signAsPrinted } from "./nixEnv";

let minio: MinioServer;
let cache: ChapterCache;
let t: TestStack | undefined;
let outputs: OutputMap;
let root: string;
let builder: NixClient;
let store: string;
let work: string;
const out = (name: string): string => String(outputs[name]?.value);
const nonce = crypto.randomBytes(6).toString("hex");

/** Store path → its content, for every path pushed so far (before and after the takeover). */
const pushed = new Map<string, string>();
/** The builder's credentials file as the chapter left it, to prove it is still the one used. */
let oldCredentials = "";
/** Every cached object's ETag before the takeover. */
let cachedBefore = new Map<string, string>();

/** Builds `expression` into the builder's store with ./NAME as its result link; returns the closure, top first. */
function build(name: string, expression: string): string[] {
  fs.writeFileSync(path.join(work, `${name}.nix`), expression);
  const top = builder.ok("nix-build", ["--store", store, "--out-link", path.join(work, name), `${name}.nix`], work).trim();
  const closure = builder.ok("nix-store", ["--store", store, "-qR", top]).trim().split("\n");
  for (const p of closure) pushed.set(p, fs.readFileSync(path.join(store, p), "utf8"));
  return [top, ...closure.filter((p) => p !== top)];
}

/** ETag of every object in the bucket but nix-cache-info (which the stack writes as its own). */
async function cachedObjects(): Promise<Map<string, string>> {
  const objects = new Map<string, string>();
  for await (const o of rootS3(minio).listObjectsV2(CHAPTER_BUCKET, "", true)) {
    if (o.name && o.name !== "nix-cache-info") objects.set(o.name, o.etag);
  }
  return objects;
}

/** A fresh host (its own HOME and narinfo cache, trusting the MinIO's CA as a homelab host trusts its own). */
let hosts = 0;
function freshHost(): { host: NixClient; hostStore: string } {
  hosts++;
  return { host: new NixClient(root, `host-${hosts}`, { NIX_SSL_CERT_FILE: cache.caFile }), hostStore: path.join(root, `store-host-${hosts}`) };
}

/**
 * A host with `substituter` and `trustedKeys` takes every pushed path, both ways a host does: `nix copy --from`
 * (which fails on any missing or unsigned path of a closure) and substitution (`nix-store -r`), each on a fresh
 * host; the contents are checked. Returns nothing; a failure fails the test with Nix's message.
 */
function expectPullsEverything(substituter: string, trustedKeys: string[]): void {
  const paths = [...pushed.keys()];
  const copier = freshHost();
  const copied = copier.host.run("nix", ["copy", "--from", substituter, "--to", copier.hostStore, "--option", "trusted-public-keys", trustedKeys.join(" "), ...paths]);
  expect(copied.stderr).not.toContain("error");
  expect(copied.status).toBe(0);

  const substituting = freshHost();
  const realised = substituting.host.run("nix-store", [
    "--store", substituting.hostStore, "-r", ...paths,
    "--option", "substituters", substituter, "--option", "trusted-public-keys", trustedKeys.join(" "),
  ]);
  expect(realised.stderr).not.toContain("error");
  expect(realised.status).toBe(0);
  for (const [p, content] of pushed) {
    expect(fs.readFileSync(path.join(copier.hostStore, p), "utf8")).toBe(content);
    expect(fs.readFileSync(path.join(substituting.hostStore, p), "utf8")).toBe(content);
  }
}

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-takeover-"));
  minio = await startMinio({ tls: true });
  cache = buildChapterCache(minio, { root });
  oldCredentials = fs.readFileSync(cache.awsCredentialsFile, "utf8");
  builder = new NixClient(root, "builder");
  store = path.join(root, "store-builder");
  work = path.join(root, "work");
  fs.mkdirSync(work);
});

afterAll(async () => {
  await t?.remove();
  await minio?.destroy();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("a stack takes over the chapter's cache, and no host notices", () => {
  test("before: the chapter's builder signs a closure with secret.key and pushes it with its ~/.aws/credentials", async () => {
    const closure = build("before", closureExpression(`before-${nonce}`));
    expect(closure).toHaveLength(2);
    const { sign, push } = pushAsChapter(cache, store, [closure[0]]);
    expect(sign).toContain("added 2 signatures");
    expect(push).toMatch(/^uploaded \d+ files/);
    cachedBefore = await cachedObjects();
    expect([...cachedBefore.keys()].filter((k) => k.endsWith(".narinfo"))).toHaveLength(2);
  });

  test("one `up` with adopt, the chapter's key imported and its password kept: publicKey is public.key's, cached objects untouched", async () => {
    t = await createTestStack("e2e-takeover", minioConfig(minio, { adopt: "true" }));
    // As the runbook sets them: the key file's content as the list's first entry, both secret.
    await t.stack.setConfig("nix-cache:importKeys[0]", { value: fs.readFileSync(cache.secretKeyFile, "utf8").trim(), secret: true }, true);
    await t.stack.setConfig("nix-cache:builderPassword", { value: cache.password, secret: true });
    const up = await t.stack.up();
    expect(up.summary.result).toBe("succeeded");
    outputs = await t.stack.outputs();

    expect(out("publicKey")).toBe(fs.readFileSync(cache.publicKeyFile, "utf8").trim());
    expect(out("publicKey").startsWith(`${CHAPTER_KEY_NAME}:`)).toBe(true);
    expect(outputs.trustedPublicKeys.value).toEqual([out("publicKey")]);
    expect(outputs.secretKeys.value).toEqual([out("secretKey")]);
    expect(outputs.secretKey.secret).toBe(true);
    // The outputs carry the builder's kept password; the builder's own file is not touched by anything.
    expect(parseAwsCredentials(out("awsCredentials")).get("nixbuilder")).toEqual({ accessKey: "nixbuilder", secretKey: cache.password });
    expect(fs.readFileSync(cache.awsCredentialsFile, "utf8")).toBe(oldCredentials);

    const after = await cachedObjects();
    for (const [key, etag] of cachedBefore) expect(`${key} ${after.get(key)}`).toBe(`${key} ${etag}`);
  });

  test("after: a closure signed with the stack's key (signCommand as printed) and pushed with the builder's OLD credentials file, to pushUrl", () => {
    expect(outputs).toBeDefined();
    const afterBuilder = new NixClient(root, "builder-after", { NIX_SSL_CERT_FILE: cache.caFile });
    const closure = build("result", closureExpression(`after-${nonce}`));
    expect(signAsPrinted(afterBuilder, outputs, store, work)).toContain("added 2 signatures");
    const env = { ...nixEnv(afterBuilder.home, [`store = ${store}`]), NIX_SSL_CERT_FILE: cache.caFile };
    expect(pushWithStandIn(env, out("pushUrl"), cache.awsCredentialsFile, [closure[0]])).toMatch(/^uploaded \d+ files/);
  });

  test("after: the chapter's builder, left as it was (its secret.key, credentials and push URL), still pushes", () => {
    const [single] = build("after-chapter", payloadExpression(`after-chapter-${nonce}`));
    const { sign, push } = pushAsChapter(cache, store, [single]);
    expect(sign).toContain("added 1 signatures");
    expect(push).toMatch(/^uploaded \d+ files/);
  });

  test("host A, configured exactly as the chapter says, pulls every path from before and after", () => {
    expect(pushed.size).toBe(5);
    expectPullsEverything(cache.substituterUrl, [cache.publicKey]);
  });

  test("host B, configured only from the stack's nixosModule, pulls every path from before and after", () => {
    const { substituters, trustedKeys } = clientModuleSettings(out("nixosModule"));
    expect(substituters).toEqual([out("substituterUrl")]);
    expect(trustedKeys).toEqual([cache.publicKey]);
    expectPullsEverything(substituters[0], trustedKeys);
  });

  test("a host trusting another key of the chapter's name refuses paths from before and after", () => {
    const keygen = new NixClient(root, "keygen");
    const otherKey = keygen.ok("nix", ["key", "convert-secret-to-public"], undefined, keygen.ok("nix", ["key", "generate-secret", "--key-name", CHAPTER_KEY_NAME])).trim();
    expect(otherKey).not.toBe(cache.publicKey);
    for (const p of pushed.keys()) {
      const { host, hostStore } = freshHost();
      const refused = host.run("nix", ["copy", "--from", out("substituterUrl"), "--to", hostStore, "--option", "trusted-public-keys", otherKey, p]);
      expect(`${p}: ${refused.stderr}`).toContain("lacks a valid signature");
      expect(refused.status).not.toBe(0);
      expect(fs.existsSync(path.join(hostStore, p))).toBe(false);
    }
  });
});
