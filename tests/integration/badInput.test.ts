// Bad input: a bad setting stops `pulumi preview` (and `pulumi up`) with one message that names the
// setting and what is allowed, before any request reaches MinIO (every case's message: tests/unit/badSettings.test.ts). MinIO sits behind a counting TCP relay,
// so "no request" is measured, not assumed. Then: renaming the bucket of a deployed cache is refused unless
// the user opts in, and with the opt-in the old bucket is kept as it was.
import * as net from "net";
import { ConfigMap, EngineEvent, OutputMap } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, TestStack } from "../../harness/stack";
import { BUCKET, cacheProblems, changesOf, codeOf, driftPreview, errorLines, failureOf, rootS3, serverInventory, stackTraceLines, stateFingerprint } from "./helpers";
import { s3Client } from "../../providers/minioClients";
import { readExpiryRules } from "../../lib/minio/lifecycle";
import { BAD_SETTINGS, BadCase, PASTED_KEY } from "../support/badSettings";

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

// Each bad value's message is checked in tests/unit/badSettings.test.ts (parseSettings and Pulumi.yaml's types).
// Here a few go through the real engine, one of each kind, to prove what only the engine can show: Pulumi's own
// type check, our check in the program, and a secret value, each stopping preview and up with one message, no
// stack trace, and no connection to MinIO.
const ENGINE_CASES: BadCase[] = [
  BAD_SETTINGS.find((c) => c.setting === "bucket" && c.value === "NixCache"),
  BAD_SETTINGS.find((c) => c.setting === "priority" && c.value === "high"),
  BAD_SETTINGS.find((c) => c.setting === "endpoint" && c.value === "not a url"),
  BAD_SETTINGS.find((c) => c.value === PASTED_KEY),
].map((c) => {
  if (!c) throw new Error("tests/support/badSettings.ts lost a case this test runs");
  return c;
});

describe("a bad setting stops preview and up before any request reaches MinIO", () => {
  test.each(ENGINE_CASES.map((c) => [c.setting, c.value === PASTED_KEY ? "(a private key)" : JSON.stringify(c.value), c] as const))("nix-cache:%s = %s", async (_s, _v, c) => {
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
    const userNames = ["nixbuilder", "nixgc", ...ENGINE_CASES.filter((c) => /^(builder|gc)User$/.test(c.setting) && c.value.length >= 3).map((c) => c.value)];
    expect(await serverInventory(minio, userNames)).toEqual({ buckets: [], users: [], policies: [] });
    // The stack holds no resources either.
    const state = await t.stack.exportStack();
    const resources = (state.deployment as { resources?: { type: string }[] }).resources ?? [];
    expect(resources.filter((r) => r.type.startsWith("nix-cache:index:"))).toEqual([]);
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
    const state = await stateFingerprint(t.stack);
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
    // The state is as it was: going back to the old name is going back to the deployed cache.
    await t.stack.setConfig("nix-cache:bucket", { value: BUCKET });
    expect(await stateFingerprint(t.stack)).toBe(state);
    expect(await cacheProblems(minio, outputs)).toEqual([]);
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
      // The destroy guard now looks at the new bucket.
      "nix-cache-destroy-guard": "update",
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
