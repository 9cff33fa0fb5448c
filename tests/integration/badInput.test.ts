// Bad input: every bad setting stops `pulumi preview` (and `pulumi up`) with one message that names the
// setting and what is allowed, before any request reaches MinIO. MinIO sits behind a counting TCP relay,
// so "no request" is measured, not assumed. Then: renaming the bucket of a deployed cache is refused unless
// the user opts in, and with the opt-in the old bucket is kept as it was.
import { generateKeyPairSync } from "crypto";
import * as net from "net";
import { ConfigMap, EngineEvent, OutputMap } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, TestStack } from "../../harness/stack";
import { BUCKET, cacheProblems, changesOf, codeOf, driftPreview, errorLines, failureOf, rootS3, serverInventory, stackTraceLines } from "./helpers";
import { s3Client } from "../../providers/minioClients";
import { readExpiryRules } from "../../lib/minio/lifecycle";

let minio: MinioServer;
let relay: net.Server;
let relayEndpoint: string;
/** TCP connections that reached MinIO through the relay. */
let connections = 0;
let t: TestStack;

/** The stack's config with the endpoint pointing at the relay. */
const baseConfig = (): ConfigMap => ({ ...minioConfig(minio), "nix-cache:endpoint": { value: relayEndpoint } });

beforeAll(async () => {
  minio = await startMinio();
  relay = net.createServer((client) => {
    connections++;
    const server = net.connect(minio.port, "127.0.0.1");
    client.pipe(server).pipe(client);
    client.on("error", () => server.destroy());
    server.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  relayEndpoint = `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
  t = await createTestStack("it-badinput", baseConfig());
});

afterAll(async () => {
  await t?.remove();
  await new Promise((resolve) => relay?.close(resolve));
  await minio?.destroy();
});

/** A bad value, and what the one error must say besides the setting's name. */
interface BadCase {
  setting: string;
  value: string;
  /** Words of "what is allowed" the message must carry. */
  allowed: RegExp;
}

// Settings Pulumi.yaml types (integer, boolean) are checked by Pulumi before our program runs: its message
// names the key and the type. Everything else is checked by lib/config/settings.ts: "nix-cache:KEY is VALUE:
// allowed is ...".
const OURS = (what: string) => new RegExp(`allowed is .*${what}`);
const TYPED = (type: string) => new RegExp(`must be of type '${type}'`);
// A private key pasted into nix-cache:caCertificate by mistake: refused like any bad value, and never shown.
const PASTED_KEY = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
const cases: BadCase[] = [
  { setting: "bucket", value: "NixCache", allowed: OURS("lowercase letters") },
  { setting: "bucket", value: "nix_cache", allowed: OURS("lowercase letters, digits, '\\.' and '-'") },
  { setting: "bucket", value: "nc", allowed: OURS("3 to 63 characters") },
  { setting: "bucket", value: "n".repeat(64), allowed: OURS("3 to 63 characters") },
  { setting: "bucket", value: "192.168.1.10", allowed: OURS("not an IP address") },
  { setting: "bucket", value: "", allowed: OURS("3 to 63 characters") },
  { setting: "expireDays", value: "0", allowed: OURS("a whole number ≥ 1") },
  { setting: "expireDays", value: "-7", allowed: OURS("a whole number ≥ 1") },
  { setting: "expireDays", value: "1.5", allowed: TYPED("integer") },
  { setting: "expireDays", value: "seven", allowed: TYPED("integer") },
  { setting: "retention", value: "forever", allowed: OURS('"gc" or "lifecycle"') },
  { setting: "retention", value: "GC", allowed: OURS('"gc" or "lifecycle"') },
  { setting: "retainDays", value: "0", allowed: OURS("a whole number ≥ 1") },
  { setting: "retainDays", value: "1.5", allowed: TYPED("integer") },
  { setting: "gcUser", value: "gc", allowed: OURS("3 to 20 characters") },
  { setting: "gcUser", value: "nix gc", allowed: OURS("letters, digits, '\\.', '_' and '-'") },
  { setting: "gcUser", value: "nixbuilder", allowed: OURS("a user name other than nix-cache:builderUser") },
  { setting: "priority", value: "-1", allowed: OURS("a whole number ≥ 0") },
  { setting: "priority", value: "2.5", allowed: TYPED("integer") },
  { setting: "priority", value: "high", allowed: TYPED("integer") },
  { setting: "keyName", value: "", allowed: OURS("must not be empty") },
  { setting: "keyName", value: "cache:1", allowed: OURS("must not contain ':' or white space") },
  { setting: "keyName", value: "cache 1", allowed: OURS("must not contain ':' or white space") },
  { setting: "keyName", value: "cache\t1", allowed: OURS("must not contain ':' or white space") },
  { setting: "builderUser", value: "", allowed: OURS("3 to 20 characters of letters, digits") },
  { setting: "builderUser", value: "ab", allowed: OURS("3 to 20 characters") },
  { setting: "builderUser", value: "nix builder", allowed: OURS("letters, digits, '\\.', '_' and '-'") },
  { setting: "builderUser", value: "nix=builder", allowed: OURS("letters, digits, '\\.', '_' and '-'") },
  { setting: "endpoint", value: "ftp://127.0.0.1:9000", allowed: OURS("an http:// or https:// URL") },
  { setting: "endpoint", value: "127.0.0.1:9000", allowed: OURS("an http:// or https:// URL") },
  { setting: "endpoint", value: "not a url", allowed: OURS("an http:// or https:// URL") },
  { setting: "publicUrl", value: "ftp://cache.homelab.local", allowed: OURS("an http:// or https:// URL") },
  { setting: "publicUrl", value: "cache.homelab.local", allowed: OURS("an http:// or https:// URL") },
  { setting: "anonymousList", value: "yes", allowed: TYPED("boolean") },
  { setting: "anonymousList", value: "1", allowed: TYPED("boolean") },
  { setting: "caCertificate", value: "/etc/ssl/homelab-ca.pem", allowed: OURS("one or more PEM certificates") },
  { setting: "caCertificate", value: PASTED_KEY, allowed: OURS("one or more PEM certificates") },
];

describe("a bad setting stops preview and up before any request reaches MinIO", () => {
  test.each(cases.map((c) => [c.setting, c.value === PASTED_KEY ? "(a private key)" : JSON.stringify(c.value), c] as const))("nix-cache:%s = %s", async (_s, _v, c) => {
    const key = `nix-cache:${c.setting}`;
    await t.stack.setAllConfig({ ...baseConfig(), [key]: { value: c.value } });
    const before = connections;

    for (const run of [() => t.stack.preview(), () => t.stack.up()]) {
      const text = await failureOf(run);
      const errors = errorLines(text).filter((l) => !/^error: (preview|update) failed$/.test(l));
      // One message, naming the setting and what is allowed; no stack trace.
      expect(errors).toHaveLength(1);
      expect(text).toMatch(new RegExp(`(nix-cache:${c.setting} (is|holds) |configuration key '${c.setting}' )`));
      expect(text).toMatch(c.allowed);
      expect(text.includes(PASTED_KEY.split("\n")[1])).toBe(false);
      expect(stackTraceLines(text)).toEqual([]);
    }

    expect(connections - before).toBe(0);
    await t.stack.removeConfig(key);
  });

  test("nothing appeared on the server: no bucket, user or policy", async () => {
    expect(connections).toBe(0);
    const userNames = ["nixbuilder", "nixgc", ...cases.filter((c) => /^(builder|gc)User$/.test(c.setting) && c.value.length >= 3).map((c) => c.value)];
    expect(await serverInventory(minio, userNames)).toEqual({ buckets: [], users: [], policies: [] });
    // The stack holds no resources either.
    const state = await t.stack.exportStack();
    const resources = (state.deployment as { resources?: { type: string }[] }).resources ?? [];
    expect(resources.filter((r) => r.type.startsWith("pulumi-nodejs:dynamic:"))).toEqual([]);
  });
});

describe("renaming the bucket of a deployed cache", () => {
  const NEW_BUCKET = "nix-cache-two";
  let outputs: OutputMap;
  const admin = () => rootS3(minio);

  beforeAll(async () => {
    // retention=lifecycle: what a rename keeps includes the old bucket's expiry rule (retention=gc has none).
    await t.stack.setAllConfig({ ...baseConfig(), "nix-cache:retention": { value: "lifecycle" } });
    const up = await t.stack.up();
    expect(up.summary.result).toBe("succeeded");
    outputs = await t.stack.outputs();
    await admin().putObject(BUCKET, "kept.narinfo", Buffer.from("StorePath: /nix/store/kept"));
  });

  test("is refused with an explanation, in preview and in up, and nothing changes", async () => {
    await t.stack.setConfig("nix-cache:bucket", { value: NEW_BUCKET });
    for (const run of [() => t.stack.preview(), () => t.stack.up()]) {
      const text = await failureOf(run);
      expect(text).toContain(`nix-cache:bucket changed from '${BUCKET}' to '${NEW_BUCKET}'; nothing was changed`);
      expect(text).toContain("pulumi config set nix-cache:allowBucketRename true");
      expect(text).toContain(`pulumi config set nix-cache:bucket ${BUCKET}`);
      expect(stackTraceLines(text)).toEqual([]);
    }
    expect((await serverInventory(minio)).buckets).toEqual([BUCKET]);
    expect((await admin().statObject(BUCKET, "kept.narinfo")).size).toBeGreaterThan(0);
    // Going back is clean.
    await t.stack.setConfig("nix-cache:bucket", { value: BUCKET });
    expect((await driftPreview(t.stack)).failed).toBe(false);
  });

  test("a bad opt-in value is refused naming the setting", async () => {
    await t.stack.setConfig("nix-cache:bucket", { value: NEW_BUCKET });
    await t.stack.setConfig("nix-cache:allowBucketRename", { value: "yes" });
    const text = await failureOf(() => t.stack.preview());
    // Pulumi.yaml declares it a boolean, so Pulumi refuses it before the program runs, naming key and type.
    expect(text).toMatch(/configuration key 'allowBucketRename' must be of type 'boolean'/);
    expect((await serverInventory(minio)).buckets).toEqual([BUCKET]);
  });

  test("with the opt-in, the cache moves to the new bucket and the old one is kept as it was", async () => {
    await t.stack.setConfig("nix-cache:allowBucketRename", { value: "true" });
    const oldInfo = await (await fetch(`${minio.endpoint}/${BUCKET}/nix-cache-info`)).text();
    const events: EngineEvent[] = [];
    const up = await t.stack.up({ onEvent: (e) => events.push(e) });
    expect(up.summary.result).toBe("succeeded");
    // The bucket and its settings are updated in place (nothing deleted); only the builder's and the GC's IAM
    // policies, whose names carry the bucket's, are replaced together with their attachments.
    expect(changesOf(events)).toEqual({
      "nix-cache-store-bucket": "update",
      "nix-cache-store-nix-cache-info": "update",
      "nix-cache-anonymous-policy": "update",
      "nix-cache-expiry-lifecycle": "update",
      "nix-cache-builder-policy": "replace",
      "nix-cache-builder-attachment": "replace",
      "nix-cache-gc-policy": "replace",
      "nix-cache-gc-attachment": "replace",
    });
    outputs = await t.stack.outputs();
    expect(String(outputs.substituterUrl.value)).toBe(`${relayEndpoint}/${NEW_BUCKET}`);

    // The new bucket is the cache: anonymous read, builder write (no delete), the expiry rule.
    expect((await serverInventory(minio)).buckets).toEqual([BUCKET, NEW_BUCKET]);
    expect(await cacheProblems(minio, outputs)).toEqual([]);
    expect(await (await fetch(`${minio.endpoint}/${NEW_BUCKET}/nix-cache-info`)).text()).toBe(oldInfo);
    const builder = s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, {
      accessKey: String(outputs.builderAccessKey.value),
      secretKey: String(outputs.builderSecretKey.value),
    });
    expect(readExpiryRules(await admin().getBucketLifecycle(NEW_BUCKET))[0]).toMatchObject({ enabled: true, days: 7 });
    // The builder now writes only to the new bucket.
    expect(await codeOf(builder.putObject(BUCKET, "old.narinfo", Buffer.from("x")))).toBe("AccessDenied");

    // The old bucket is as it was: its objects, nix-cache-info, anonymous read and expiry rule.
    expect((await admin().statObject(BUCKET, "kept.narinfo")).size).toBeGreaterThan(0);
    expect(await (await fetch(`${minio.endpoint}/${BUCKET}/nix-cache-info`)).text()).toBe(oldInfo);
    expect(readExpiryRules(await admin().getBucketLifecycle(BUCKET))[0]).toMatchObject({ enabled: true, days: 7 });

    // The stack is settled: the drift check is clean, and no policy of the old name is left.
    expect((await driftPreview(t.stack)).failed).toBe(false);
    expect((await serverInventory(minio)).policies).toEqual([`${NEW_BUCKET}-gc`, `${NEW_BUCKET}-write`]);
  });
});
