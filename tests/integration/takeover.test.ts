// Taking over the chapter's cache made by hand (issue 19): the chapter's set-up run verbatim with mc and Nix
// (harness/chapter.ts), signed paths pushed with the chapter's key and credentials, then a stack with
// nix-cache:adopt, the chapter's key imported and the builder's password kept. The preview lists exactly what
// changes and why; bad imports are refused before MinIO is touched; after `up` every cached object is byte for
// byte what it was, the builder's old credentials still upload, publicKey is the chapter's public.key, and mc
// (an independent judge) sees the stack's policies. Without the kept password, the old one stops working and
// the new output works.
import * as fs from "fs";
import { OutputMap } from "@pulumi/pulumi/automation";
import { createHash } from "crypto";
import { fingerprint, nix32, parseNarinfo } from "../../lib/signing/narinfo";
import { generateKeypair, signDetached } from "../../lib/signing/signingKey";
import { buildChapterCache, ChapterCache, CHAPTER_BUCKET, CHAPTER_BUILDER } from "../../harness/chapter";
import { generatedPath, narinfoText } from "../../harness/cacheFill";
import { McAnonymous, McLifecycle, McUserInfo } from "../../harness/mc";
import { MinioServer, startMinio } from "../../harness/minio";
import { backendText, createTestStack, minioConfig, TestStack } from "../../harness/stack";
import { s3Client } from "../../providers/minioClients";
import { codeOf, driftPreview, rootS3, serverInventory, targetOf } from "./helpers";

jest.setTimeout(300_000);

/** Every object of the bucket: key → ETag and bytes (base64), to compare before and after. */
async function objectsOf(minio: MinioServer, bucket = CHAPTER_BUCKET): Promise<Record<string, string>> {
  const s3 = rootS3(minio);
  const out: Record<string, string> = {};
  const res = await s3.listObjectsV2Query(bucket, "", "", "", 1000, "");
  for (const o of res.objects) {
    if (!o.name) continue;
    const chunks: Buffer[] = [];
    for await (const c of await s3.getObject(bucket, o.name)) chunks.push(c as Buffer);
    out[o.name] = Buffer.concat(chunks).toString("base64");
  }
  return out;
}

/** Pushes `names` as the chapter's builder does: narinfos signed with its secret.key, uploaded with its credentials. */
async function pushSigned(minio: MinioServer, cache: ChapterCache, names: string[], secretKey = fs.readFileSync(cache.secretKeyFile, "utf8").trim()) {
  const builder = s3Client(targetOf(minio), { accessKey: CHAPTER_BUILDER, secretKey: cache.password });
  for (const name of names) {
    const p = generatedPath(name);
    // A NarHash Nix can decode (the fingerprint that is signed carries it in its normal form).
    const narHash = `sha256:${nix32(createHash("sha256").update(name).digest())}`;
    const text = narinfoText(p).replace(/^NarHash: .*$/m, `NarHash: ${narHash}`);
    const signed = `${text}Sig: ${signDetached(secretKey, fingerprint(parseNarinfo(text)))}\n`;
    await builder.putObject(CHAPTER_BUCKET, p.narKey, Buffer.alloc(p.narBytes, 7));
    await builder.putObject(CHAPTER_BUCKET, `${p.hash}.narinfo`, Buffer.from(signed));
  }
}

/** Sets nix-cache:importKeys as a user does, `pulumi config set --secret --path 'nix-cache:importKeys[i]' KEY`. */
async function setImports(t: TestStack, keys: string[]): Promise<void> {
  await t.stack.removeConfig("nix-cache:importKeys");
  for (const [i, key] of keys.entries()) await t.stack.setConfig(`nix-cache:importKeys[${i}]`, { value: key, secret: true }, true);
}

const takeoverLines = (text: string): string[] =>
  [...new Set(text.split("\n").map((l) => l.trim().replace(/^warning: /, "")).filter((l) => l.startsWith("takeover: ")))];

describe("a stack takes over the chapter's cache, keeping its key and the builder's password", () => {
  let minio: MinioServer;
  let cache: ChapterCache;
  let t: TestStack;
  let outputs: OutputMap;
  let before: Record<string, string>;
  const chapterKey = () => fs.readFileSync(cache.secretKeyFile, "utf8").trim();

  beforeAll(async () => {
    minio = await startMinio();
    cache = buildChapterCache(minio);
    await pushSigned(minio, cache, ["hello-2.12", "glibc-2.39"]);
    before = await objectsOf(minio);
    t = await createTestStack("takeover", {
      ...minioConfig(minio, { adopt: "true" }),
      "nix-cache:builderPassword": { value: cache.password, secret: true },
    });
    await setImports(t, [chapterKey()]);
  });
  afterAll(async () => {
    await t?.remove();
    await minio?.destroy();
    cache?.mc.remove();
  });

  test("bad imports are refused at once, naming each entry, before MinIO is touched", async () => {
    const server = await serverInventory(minio, [CHAPTER_BUILDER, "nixgc"]);
    const chapter = fs.readFileSync(cache.secretKeyFile, "utf8").trim();
    const other = generateKeypair("s3.homelab.local-1");
    const bad = [cache.publicKey, `s3.homelab.local-1:${Buffer.alloc(64, 1).toString("base64")}`, generateKeypair("elsewhere-1").secretKey, chapter, other.secretKey];
    await setImports(t, bad);
    const err = await t.stack.preview().then(
      () => "",
      (e: Error) => e.message,
    );
    await setImports(t, [chapter]);
    const lines = err;
    expect(lines).toMatch(/importKeys\[0\] \(key name "s3.homelab.local-1"\) is a public key/);
    expect(lines).toMatch(/importKeys\[1\] \(key name "s3.homelab.local-1"\) is not a Nix secret key: its public half does not belong to its seed/);
    expect(lines).toMatch(/importKeys\[2\] is the key "elsewhere-1", a name no setting uses/);
    expect(lines).toMatch(/importKeys\[4\] is a second key named "s3.homelab.local-1"/);
    for (const key of [chapter, other.secretKey]) expect(err).not.toContain(key.split(":")[1].slice(0, 40));
    expect(await serverInventory(minio, [CHAPTER_BUILDER, "nixgc"])).toEqual(server);
    expect(await objectsOf(minio)).toEqual(before);
  });

  test("without the import, the takeover is refused: it would put a new key under the name the paths are signed with", async () => {
    await t.stack.removeConfig("nix-cache:importKeys");
    const err = await t.stack.preview().then(
      () => "",
      (e: Error) => e.message,
    );
    await setImports(t, [chapterKey()]);
    expect(err).toContain("the cache's paths are signed by a key named 's3.homelab.local-1' (2 of the 2 narinfos looked at)");
    expect(err).toContain(`pulumi config set --secret --path 'nix-cache:importKeys[0]' "$(cat ~/.config/nix/secret.key)"`);
    expect(await objectsOf(minio)).toEqual(before);
    expect(cache.mc.json<McAnonymous>(["anonymous", "get", "s3/nix-cache"]).permission).toBe("download");
  });

  test("the preview lists each change and why, and changes nothing", async () => {
    const preview = await t.stack.preview();
    const lines = takeoverLines(preview.stdout);
    expect(lines).toEqual([
      expect.stringMatching(/^takeover: bucket 'nix-cache': taken over and marked as this stack's \(its tags\); its 5 objects are kept as they are, none deleted or rewritten$/),
      expect.stringMatching(/^takeover: anonymous access: 'download' \(mc anonymous set download: anyone may list every path in the bucket, and read it\) → read objects only \(GetObject\): Nix never lists a cache/),
      expect.stringMatching(/^takeover: bucket lifecycle: expiry rule '[^']+' \(expires every object, nix-cache-info included after 7 days\) → removed; retention=gc: the closure-safe GC .* breaks closures/),
      expect.stringMatching(/^takeover: nix-cache-info: the same text; its content type '[^']+' → 'text\/x-nix-cache-info'/),
      expect.stringMatching(/^takeover: builder user 'nixbuilder': password kept \(nix-cache:builderPassword is its current password\)/),
      expect.stringMatching(/^takeover: builder policy 'nix-cache-write': the same actions on the same bucket as its document now; rewritten only to mark it as this stack's/),
      expect.stringMatching(/^takeover: GC user 'nixgc': does not exist → made/),
      expect.stringMatching(/^takeover: GC policy 'nix-cache-gc': does not exist → made/),
      `takeover: signing key 's3.homelab.local-1': imported (nix-cache:importKeys), the key hosts already trust: ${cache.publicKey}`,
    ]);
    expect(preview.stdout).not.toContain(cache.password);
    expect(await objectsOf(minio)).toEqual(before);
  });

  test("up keeps every cached object, the builder's old credentials, and the chapter's key", async () => {
    const up = await t.stack.up();
    expect(up.summary.result).toBe("succeeded");
    outputs = await t.stack.outputs();
    expect(outputs.publicKey.value).toBe(cache.publicKey);
    expect(outputs.builderSecretKey.secret).toBe(true);
    expect(outputs.builderSecretKey.value).toBe(cache.password);
    expect(await objectsOf(minio)).toEqual(before);
    // The builder pushes after the takeover with the chapter's credentials file, signed with the stack's secretKey.
    await pushSigned(minio, cache, ["after-takeover-1"], String(outputs.secretKey.value));
    const builder = s3Client(targetOf(minio), { accessKey: CHAPTER_BUILDER, secretKey: cache.password });
    expect(await codeOf(builder.removeObject(CHAPTER_BUCKET, "nix-cache-info"))).toBe("AccessDenied");
  });

  test("mc, as an independent judge, sees the stack's access rules on the chapter's cache", () => {
    expect(cache.mc.json<McAnonymous>(["anonymous", "get", "s3/nix-cache"]).permission).toBe("custom");
    expect(cache.mc.jsonOutcome<McLifecycle>(["ilm", "rule", "ls", "s3/nix-cache"])).toMatchObject({
      status: "error",
      error: { cause: { error: { Code: "NoSuchLifecycleConfiguration" } } },
    });
    expect(cache.mc.json<McUserInfo>(["admin", "user", "info", "s3", "nixbuilder"]).policyName).toBe("nix-cache-write");
  });

  test("once the opt-in is removed, the drift check is clean; neither the imported key nor the kept password is in the state in plain text", async () => {
    // While nix-cache:adopt is set, each preview says the takeover is done and the opt-in should go; also after a
    // refresh dropped the record: the bucket carries this stack's marker, so its paths' key is no reason to refuse.
    for (const refresh of [false, true]) {
      expect(takeoverLines((await t.stack.preview({ refresh })).stdout)).toEqual([
        "takeover: done: this stack owns the cache now; remove the opt-in (pulumi config rm nix-cache:adopt), then pulumi up",
      ]);
    }
    await t.stack.removeConfig("nix-cache:adopt");
    const drift = await driftPreview(t.stack);
    expect(drift.changes).toEqual({});
    expect(drift.failed).toBe(false);
    const state = backendText(t.backendDir);
    expect(state).not.toContain(chapterKey().split(":")[1]);
    expect(state).not.toContain(cache.password);
    expect(drift.text).not.toContain(cache.password);
  });

  test("removing the import later is refused: it would swap in a generated key", async () => {
    await t.stack.removeConfig("nix-cache:importKeys");
    const err = await t.stack.preview().then(
      () => "",
      (e: Error) => e.message,
    );
    expect(err).toContain("nix-cache:importKeys no longer holds 's3.homelab.local-1', the key this stack imported, while nix-cache:keyName still names it; nothing was changed.");
  });
});

describe("a takeover without the kept password", () => {
  let minio: MinioServer;
  let cache: ChapterCache;
  let t: TestStack;

  beforeAll(async () => {
    minio = await startMinio();
    cache = buildChapterCache(minio);
    t = await createTestStack("takeover-pw", minioConfig(minio, { adopt: "true" }));
    await setImports(t, [fs.readFileSync(cache.secretKeyFile, "utf8").trim()]);
  });
  afterAll(async () => {
    await t?.remove();
    await minio?.destroy();
    cache?.mc.remove();
  });

  test("says so in the preview; after up the old password is refused and the new output works", async () => {
    const preview = await t.stack.preview();
    expect(takeoverLines(preview.stdout)).toContainEqual(
      expect.stringMatching(/^takeover: builder user 'nixbuilder': its password → a new generated one \(MinIO never reveals a password\).*pulumi config set --secret nix-cache:builderPassword PASSWORD/),
    );
    expect((await t.stack.up()).summary.result).toBe("succeeded");
    const outputs = await t.stack.outputs();
    const put = (secretKey: string) =>
      codeOf(s3Client(targetOf(minio), { accessKey: CHAPTER_BUILDER, secretKey }).putObject(CHAPTER_BUCKET, "probe.narinfo", Buffer.from("x")));
    expect(await put(cache.password)).toBe("SignatureDoesNotMatch");
    expect(await put(String(outputs.builderSecretKey.value))).toBe("ok");
    expect(outputs.publicKey.value).toBe(cache.publicKey);
  });
});
