// The cache the chapter builds by hand (harness/chapter.ts: its commands verbatim, with mc and Nix) on a fresh
// MinIO over https, as the chapter's https://s3.homelab.local (here localhost, certified by a throwaway CA):
// mc reports what the chapter says it set up, and real Nix 2.8 uses it the chapter's way: a path signed with
// the chapter's key and pushed with nixbuilder's credentials is substituted by a host configured as the chapter
// says, and refused by a host that trusts another key. The start of the takeover tests (issue 19).
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { publicKeyOf } from "../../lib/signing/signingKey";
import { buildChapterCache, CHAPTER_KEY_NAME, ChapterCache, pushAsChapter } from "../../harness/chapter";
import { McAnonymous, McLifecycle, McPolicyInfo, McUserInfo } from "../../harness/mc";
import { MinioServer, startMinio } from "../../harness/minio";
import { NixClient, payloadExpression, requireNix } from "./nixEnv";

let minio: MinioServer;
let cache: ChapterCache;
let root: string;
const nonce = crypto.randomBytes(8).toString("hex");
/** The built store path; set by the push test, used by the pulls. */
let storePath = "";

/** A fresh host (own HOME and narinfo cache) trusting the MinIO's CA, as a homelab host trusts its own. */
let hosts = 0;
function freshHost(): { host: NixClient; store: string } {
  hosts++;
  return { host: new NixClient(root, `host-${hosts}`, { NIX_SSL_CERT_FILE: cache.caFile }), store: path.join(root, `store-host-${hosts}`) };
}

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-chapter-"));
  minio = await startMinio({ tls: true });
  cache = buildChapterCache(minio, { root });
});

afterAll(async () => {
  await minio?.destroy();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("the chapter's set-up by hand, its commands verbatim", () => {
  test("leaves the user the files the chapter has them write", () => {
    const secret = fs.readFileSync(cache.secretKeyFile, "utf8").trim();
    expect(secret).toMatch(/^s3\.homelab\.local-1:[A-Za-z0-9+/]{86}==$/);
    expect(cache.publicKey).toMatch(/^s3\.homelab\.local-1:[A-Za-z0-9+/]{43}=$/);
    expect(publicKeyOf(secret)).toBe(cache.publicKey);
    expect(cache.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(parseAwsCredentials(fs.readFileSync(cache.awsCredentialsFile, "utf8")).get("nixbuilder")).toEqual({
      accessKey: "nixbuilder",
      secretKey: cache.password,
    });
    const mcConfig = JSON.parse(fs.readFileSync(path.join(cache.home, ".mc", "config.json"), "utf8")) as {
      aliases: Record<string, { url: string; accessKey: string; api: string; path: string }>;
    };
    expect(mcConfig.aliases.s3).toMatchObject({ url: minio.endpoint, accessKey: minio.rootUser, api: "s3v4", path: "auto" });
    // The chapter's push URL names the endpoint without a scheme: https, as Nix's S3 store reads it.
    expect(parseS3StoreUrl(cache.pushUrl)).toMatchObject({ bucket: "nix-cache", endpoint: minio.endpoint, profile: "nixbuilder" });
  });

  test("mc reports what the chapter says: anonymous download, one 7-day expiry rule, nixbuilder under nix-cache-write", () => {
    expect(cache.mc.json<McAnonymous>(["anonymous", "get", "s3/nix-cache"]).permission).toBe("download");

    const rules = cache.mc.json<McLifecycle>(["ilm", "rule", "ls", "s3/nix-cache"]).config.Rules;
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ Status: "Enabled", Expiration: { Days: 7 } });
    expect(rules[0].Filter?.Prefix ?? "").toBe("");

    expect(cache.mc.json<McUserInfo>(["admin", "user", "info", "s3", "nixbuilder"])).toMatchObject({
      policyName: "nix-cache-write",
      userStatus: "enabled",
    });
    const statements = cache.mc.json<McPolicyInfo>(["admin", "policy", "info", "s3", "nix-cache-write"]).policyInfo.Policy.Statement;
    expect(statements).toHaveLength(1);
    expect(statements[0].Effect).toBe("Allow");
    expect([...statements[0].Action].sort()).toEqual([
      "s3:AbortMultipartUpload",
      "s3:GetBucketLocation",
      "s3:GetObject",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]);
    expect([...statements[0].Resource].sort()).toEqual(["arn:aws:s3:::nix-cache", "arn:aws:s3:::nix-cache/*"]);
  });

  test("a path built with Nix 2.8, signed and pushed the chapter's way, is substituted by a host configured as the chapter says", () => {
    const builder = new NixClient(root, "builder");
    const builderStore = path.join(root, "store-builder");
    const work = path.join(root, "work");
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, "payload.nix"), payloadExpression(nonce));
    storePath = builder.ok("nix-build", ["--store", builderStore, "--no-out-link", "payload.nix"], work).trim();
    expect(storePath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-payload$/);

    const pushed = pushAsChapter(cache, builderStore, [storePath]);
    expect(pushed.sign).toContain("added 1 signatures");
    expect(pushed.push).toMatch(/^uploaded \d+ files/);

    // The chapter's host: extra-substituters = [ "URL/nix-cache/" ], extra-trusted-public-keys = [ public.key ].
    const { host, store } = freshHost();
    const realised = host.run("nix-store", [
      "--store", store, "-r", storePath,
      "--option", "substituters", cache.substituterUrl, "--option", "trusted-public-keys", cache.publicKey,
    ]);
    expect(realised.stderr).not.toContain("error");
    expect(realised.status).toBe(0);
    expect(fs.readFileSync(path.join(store, storePath), "utf8")).toBe(`hello ${nonce}\n`);
  });

  test("a host trusting another key of the same name refuses the path", () => {
    expect(storePath).not.toBe("");
    const keygen = new NixClient(root, "keygen");
    const otherKey = keygen.ok("nix", ["key", "convert-secret-to-public"], undefined, keygen.ok("nix", ["key", "generate-secret", "--key-name", CHAPTER_KEY_NAME])).trim();
    expect(otherKey).not.toBe(cache.publicKey);

    const { host, store } = freshHost();
    const refused = host.run("nix", ["copy", "--from", cache.substituterUrl, "--to", store, "--option", "trusted-public-keys", otherKey, storePath]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain("lacks a valid signature");
    expect(fs.existsSync(path.join(store, storePath))).toBe(false);
  });
});
