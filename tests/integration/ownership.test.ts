// Several caches on one MinIO, and ownership: two stacks of this project (A: the defaults, B: its own bucket and
// builder) share one MinIO without touching each other's things; a third stack that names A's user, A's bucket,
// or a by-hand set-up (the chapter's mc steps) is refused with a message and changes nothing, until it adopts
// (nix-cache:adopt); a stack rename keeps the owner; destroying B leaves A working; a stack from before markers
// marks its own things on its first up. One MinIO, the stacks shared by the cases, which run in order.
import * as fs from "fs";
import * as path from "path";
import { EngineEvent, LocalWorkspace, OutputMap, Stack } from "@pulumi/pulumi/automation";
import { EXPIRY_RULE_ID, lifecycleConfiguration, readExpiryRules } from "../../lib/minio/lifecycle";
import { FoundOwner, ownerOfPolicy, ownerOfRules, ownerOfTags } from "../../lib/minio/ownership";
import { anonymousPolicy, builderPolicy, canonicalPolicy, gcPolicy } from "../../lib/minio/policies";
import { adminRequest, minioAdmin, s3Client } from "../../providers/minioClients";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { cacheProblems, changesOf, codeOf, driftPreview, errorLines, failureOf, pulumiCli, rootOf, rootS3, setExactConfig, stackTraceLines, targetOf } from "./helpers";

let minio: MinioServer;
/** Stack A: bucket nix-cache, builder nixbuilder (the defaults). */
let a: TestStack;
/** Stack B: bucket cache-b and nothing else, so its users are named after it (cache-b-builder, cache-b-gc). */
let b: TestStack;
/** The stack that tries to take what is not its own. */
let x: TestStack;
let outA: OutputMap;
let outB: OutputMap;
/** B after `pulumi stack rename`. */
let renamedB: Stack | undefined;

/** A second cache on the same MinIO needs one setting: its bucket (the users' names derive from it). */
const B_CONFIG = { bucket: "cache-b" };
const HAND_PASSWORD = "handmade-password-123";

/**
 * A stack's config: retention=lifecycle, as this file checks the marker in the expiry rule's ID too (retention=gc
 * has no rule: gcIdentity.test.ts), and a GC user of the stack's own (the default nixgc is A's).
 */
const cfg = (extra: Record<string, string> = {}) => minioConfig(minio, { retention: "lifecycle", gcUser: "gc-x", ...extra });

beforeAll(async () => {
  minio = await startMinio();
  a = await createTestStack("it-own-a", cfg({ gcUser: "nixgc" }));
  b = await createTestStack("it-own-b", minioConfig(minio, { retention: "lifecycle", ...B_CONFIG }));
  x = await createTestStack("it-own-x", cfg());
  for (const t of [a, b]) expect((await t.stack.up()).summary.result).toBe("succeeded");
  outA = await a.stack.outputs();
  outB = await b.stack.outputs();
});

afterAll(async () => {
  if (renamedB) {
    await renamedB.workspace.removeStack(renamedB.name, { force: true }).catch(() => undefined);
    fs.rmSync(path.join(PROJECT_DIR, `Pulumi.${renamedB.name}.yaml`), { force: true });
  }
  for (const t of [a, b, x]) await t?.remove();
  await minio?.destroy();
});

const s3 = () => rootS3(minio);
const admin = () => ({ t: targetOf(minio), c: rootOf(minio) });

/** The owner id a stack keeps in its state. */
async function ownerIdOf(stack: Stack): Promise<string> {
  const res = ((await stack.exportStack()).deployment as { resources?: { type: string; outputs?: { ownerId?: string } }[] }).resources ?? [];
  return String(res.find((r) => r.type === "nix-cache:index:NixCacheOwner")?.outputs?.ownerId);
}

/** Whose a bucket and its settings are, as MinIO has them. */
async function bucketMarks(bucket: string): Promise<{ tags?: FoundOwner; policy?: FoundOwner; rule?: FoundOwner }> {
  return {
    tags: ownerOfTags(await s3().getBucketTagging(bucket).catch(() => [])),
    policy: ownerOfPolicy(await s3().getBucketPolicy(bucket).catch(() => "")),
    rule: ownerOfRules(readExpiryRules(await s3().getBucketLifecycle(bucket).catch(() => null))),
  };
}

/**
 * Everything on the server, as root sees it: each bucket with its tags, policy, lifecycle and object names,
 * each canned policy's document, and each of the named users with its status and policies. Two equal
 * fingerprints: nothing was changed.
 */
async function fingerprint(users: string[]): Promise<string> {
  const buckets: Record<string, unknown> = {};
  for (const { name } of await s3().listBuckets()) {
    const objects: string[] = [];
    for await (const o of s3().listObjectsV2(name, "", true)) objects.push(`${o.name}:${o.etag}`);
    buckets[name] = {
      tags: (await s3().getBucketTagging(name).catch(() => [])).map((t) => `${t.Key}=${t.Value}`).sort(),
      policy: await s3().getBucketPolicy(name).catch(() => ""),
      lifecycle: await s3().getBucketLifecycle(name).catch(() => null),
      objects: objects.sort(),
    };
  }
  const { t, c } = admin();
  const policies: Record<string, unknown> = {};
  const listed = JSON.parse((await adminRequest(t, c, "GET", "list-canned-policies", {})).body.toString());
  // MinIO lists a policy's actions in a different order on each read: compare them sorted.
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, w]) => [k, sorted(w)])) : v;
  for (const name of Object.keys(listed).sort()) policies[name] = sorted(await minioAdmin.policyDocument(t, c, name));
  const userInfo: Record<string, unknown> = {};
  for (const u of users) userInfo[u] = await minioAdmin.userInfo(t, c, u);
  return JSON.stringify({ buckets, policies, userInfo });
}

/** A builder's S3 client from a stack's outputs. */
const builderOf = (out: OutputMap) =>
  s3Client(targetOf(minio), { accessKey: String(out.builderAccessKey.value), secretKey: String(out.builderSecretKey.value) });

const USERS = ["nixbuilder", "cache-b-builder", "builder-d", "handbuilder", "nixgc", "cache-b-gc", "gc-x"];

test("each stack marks what it makes with its own owner id: bucket tags, policy Sids, the rule's ID", async () => {
  const idA = await ownerIdOf(a.stack);
  const idB = await ownerIdOf(b.stack);
  expect(idA).toMatch(/^[0-9a-f]{32}$/);
  expect(idB).toMatch(/^[0-9a-f]{32}$/);
  expect(idA).not.toBe(idB);
  expect(await bucketMarks("nix-cache")).toEqual({ tags: { id: idA, label: `nix-cache/${a.stack.name}` }, policy: { id: idA, label: `nix-cache/${a.stack.name}` }, rule: { id: idA } });
  expect(await bucketMarks("cache-b")).toEqual({ tags: { id: idB, label: `nix-cache/${b.stack.name}` }, policy: { id: idB, label: `nix-cache/${b.stack.name}` }, rule: { id: idB } });
  const { t, c } = admin();
  expect(ownerOfPolicy(await minioAdmin.policyDocument(t, c, "nix-cache-write"))?.id).toBe(idA);
  expect(ownerOfPolicy(await minioAdmin.policyDocument(t, c, "cache-b-write"))?.id).toBe(idB);
  expect((await minioAdmin.userInfo(t, c, "nixbuilder"))?.policies).toEqual(["nix-cache-write"]);
  expect((await minioAdmin.userInfo(t, c, "cache-b-builder"))?.policies).toEqual(["cache-b-write"]);
  // The GC identities: each stack's own user and policy, marked the same way.
  expect(ownerOfPolicy(await minioAdmin.policyDocument(t, c, "nix-cache-gc"))?.id).toBe(idA);
  expect(ownerOfPolicy(await minioAdmin.policyDocument(t, c, "cache-b-gc"))?.id).toBe(idB);
  expect((await minioAdmin.userInfo(t, c, "nixgc"))?.policies).toEqual(["nix-cache-gc"]);
  expect((await minioAdmin.userInfo(t, c, "cache-b-gc"))?.policies).toEqual(["cache-b-gc"]);
});

test("each builder writes only its own bucket; both caches work", async () => {
  expect(await cacheProblems(minio, outA)).toEqual([]);
  expect(await cacheProblems(minio, outB)).toEqual([]);
  expect(await codeOf(builderOf(outA).putObject("cache-b", "a.narinfo", Buffer.from("x")))).toBe("AccessDenied");
  expect(await codeOf(builderOf(outB).putObject("nix-cache", "b.narinfo", Buffer.from("x")))).toBe("AccessDenied");
});

test("a drift check of one stack is clean while the other changes its cache", async () => {
  await b.stack.setAllConfig({ "nix-cache:expireDays": { value: "3" }, "nix-cache:anonymousList": { value: "true" } });
  const events: EngineEvent[] = [];
  expect((await b.stack.up({ onEvent: (e) => events.push(e) })).summary.result).toBe("succeeded");
  expect(changesOf(events)).toEqual({ "nix-cache-anonymous-policy": "update", "nix-cache-expiry-lifecycle": "update" });
  const checkA = await driftPreview(a.stack);
  expect([checkA.failed, checkA.failed ? checkA.text : ""]).toEqual([false, ""]);
  expect(checkA.changes).toEqual({});
  expect(readExpiryRules(await s3().getBucketLifecycle("nix-cache"))[0].days).toBe(7);
  expect(readExpiryRules(await s3().getBucketLifecycle("cache-b"))[0].days).toBe(3);
  expect((await fetch(`${minio.endpoint}/nix-cache/`)).status).toBe(403);
  expect((await fetch(`${minio.endpoint}/cache-b/`)).status).toBe(200);
  expect((await driftPreview(b.stack)).failed).toBe(false);
});

describe("what is not the stack's own is refused with a message, and nothing changes", () => {
  test("another stack's builder user (B's bucket plan with A's nixbuilder)", async () => {
    await setExactConfig(x, cfg({ bucket: "cache-c", builderUser: "nixbuilder" }));
    const before = await fingerprint(USERS);
    for (const run of [() => x.stack.preview(), () => x.stack.up()]) {
      const text = await failureOf(run);
      const errors = errorLines(text).join("\n");
      expect(errors).toContain(`MinIO user 'nixbuilder' belongs to stack 'nix-cache/${a.stack.name}'`);
      expect(errors).toContain("nothing was changed");
      expect(errors).toContain("pulumi config set nix-cache:builderUser NAME");
      expect(errors).toContain("adoption overwrites the user's password");
      expect(stackTraceLines(text)).toEqual([]);
    }
    expect(await fingerprint(USERS)).toBe(before);
    expect(await cacheProblems(minio, outA)).toEqual([]);
  });

  test("another stack's GC user (a bucket and builder of its own, A's nixgc)", async () => {
    await setExactConfig(x, cfg({ bucket: "cache-c", builderUser: "builder-c", gcUser: "nixgc" }));
    const before = await fingerprint(USERS);
    for (const run of [() => x.stack.preview(), () => x.stack.up()]) {
      const text = await failureOf(run);
      const errors = errorLines(text).join("\n");
      expect(errors).toContain(`MinIO user 'nixgc' belongs to stack 'nix-cache/${a.stack.name}'`);
      expect(errors).toContain("nothing was changed");
      expect(errors).toContain("adoption overwrites the user's password");
      expect(stackTraceLines(text)).toEqual([]);
    }
    expect(await fingerprint(USERS)).toBe(before);
    expect(await cacheProblems(minio, outA)).toEqual([]);
  });

  test("another stack's bucket (and so its policy BUCKET-write)", async () => {
    await setExactConfig(x, cfg({ bucket: "nix-cache", builderUser: "builder-d" }));
    const before = await fingerprint(USERS);
    for (const run of [() => x.stack.preview(), () => x.stack.up()]) {
      const text = await failureOf(run);
      const errors = errorLines(text).join("\n");
      expect(errors).toContain(`bucket 'nix-cache' belongs to stack 'nix-cache/${a.stack.name}'`);
      expect(errors).toContain("adoption overwrites the bucket's anonymous-read policy, its expiry (lifecycle) rule and its nix-cache-info");
      expect(stackTraceLines(text)).toEqual([]);
    }
    expect(await fingerprint(USERS)).toBe(before);
    expect(await cacheProblems(minio, outA)).toEqual([]);
  });

  describe("a by-hand set-up (the chapter's mc steps)", () => {
    let handObjects: string[];
    beforeAll(async () => {
      // mc mb, mc anonymous set download, mc ilm rule add --expire-days 7, nix-cache-info and a cached path,
      // mc admin user add, mc admin policy create + attach.
      await s3().makeBucket("handmade", "us-east-1");
      await s3().setBucketPolicy("handmade", JSON.stringify(anonymousPolicy("handmade", false)));
      await s3().setBucketLifecycle("handmade", { Rule: [{ ID: "hand", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 } }] } as never);
      const info = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";
      await s3().putObject("handmade", "nix-cache-info", Buffer.from(info));
      await s3().putObject("handmade", "abc.narinfo", Buffer.from("StorePath: /nix/store/abc-hand"));
      const { t, c } = admin();
      await minioAdmin.putPolicy(t, c, "handmade-policy", JSON.stringify(builderPolicy("handmade")));
      await minioAdmin.addUser(t, c, "handbuilder", HAND_PASSWORD);
      await minioAdmin.attachPolicy(t, c, "handbuilder", "handmade-policy");
      handObjects = ["abc.narinfo", "nix-cache-info"];
      await setExactConfig(x, cfg({ bucket: "handmade", builderUser: "handbuilder" }));
    });

    const handUserWorks = () =>
      codeOf(s3Client(targetOf(minio), { accessKey: "handbuilder", secretKey: HAND_PASSWORD }).putObject("handmade", "p.narinfo", Buffer.from("x")));
    const handFingerprint = async () => {
      const { t, c } = admin();
      return JSON.stringify({
        marks: await bucketMarks("handmade"),
        policy: await s3().getBucketPolicy("handmade"),
        rules: readExpiryRules(await s3().getBucketLifecycle("handmade")),
        info: await (await fetch(`${minio.endpoint}/handmade/nix-cache-info`)).text(),
        user: await minioAdmin.userInfo(t, c, "handbuilder"),
        userPolicy: canonicalPolicy(await minioAdmin.policyDocument(t, c, "handmade-policy")),
      });
    };

    test("is refused, bucket and user, saying they are unmarked; the set-up keeps working as it was", async () => {
      const before = await handFingerprint();
      const others = await fingerprint(["nixbuilder", "cache-b-builder"]);
      // The preview stops at the first refusal (the bucket's or the user's, whichever is checked first).
      const preview = errorLines(await failureOf(() => x.stack.preview())).join("\n");
      expect(preview).toMatch(/(bucket 'handmade'|MinIO user 'handbuilder') exists and is not marked as any nix-cache stack's \(made by hand/);
      expect(preview).toContain("pulumi config set nix-cache:adopt true");
      // Each alone, from a stack with a bucket (or user) of its own.
      const y = await createTestStack("it-own-y", cfg({ bucket: "cache-y", builderUser: "handbuilder", gcUser: "gc-y" }));
      try {
        const user = errorLines(await failureOf(() => y.stack.preview())).join("\n");
        expect(user).toContain("MinIO user 'handbuilder' exists and is not marked as any nix-cache stack's");
        expect(user).toContain("adoption overwrites the user's password");
        await setExactConfig(y, cfg({ bucket: "handmade", builderUser: "builder-y", gcUser: "gc-y" }));
        const bucket = errorLines(await failureOf(() => y.stack.preview())).join("\n");
        expect(bucket).toContain("bucket 'handmade' exists and is not marked as any nix-cache stack's (made by hand");
        expect(bucket).toContain("adoption overwrites the bucket's anonymous-read policy");
      } finally {
        await y.remove();
      }
      // `up` without a preview (the Automation API's): the writes of this stack's own new things may start
      // beside the refusal, but the by-hand bucket and user are refused and left exactly as they were.
      const up = errorLines(await failureOf(() => x.stack.up())).join("\n");
      expect(up).toMatch(/(bucket 'handmade'|MinIO user 'handbuilder') exists and is not marked/);
      expect(await handFingerprint()).toBe(before);
      expect(await handUserWorks()).toBe("ok");
      await s3().removeObject("handmade", "p.narinfo");
      // A's and B's things: untouched.
      expect(JSON.parse(await fingerprint(["nixbuilder", "cache-b-builder"])).buckets["nix-cache"]).toEqual(JSON.parse(others).buckets["nix-cache"]);
      expect(await cacheProblems(minio, outA)).toEqual([]);
    });

    test("with nix-cache:adopt=true the stack takes it over: new password, its policy and rule, objects kept", async () => {
      await x.stack.setConfig("nix-cache:adopt", { value: "true" });
      expect((await x.stack.up()).summary.result).toBe("succeeded");
      const out = await x.stack.outputs();
      const idX = await ownerIdOf(x.stack);
      expect(await bucketMarks("handmade")).toEqual({ tags: { id: idX, label: `nix-cache/${x.stack.name}` }, policy: { id: idX, label: `nix-cache/${x.stack.name}` }, rule: { id: idX } });
      expect(await cacheProblems(minio, out)).toEqual([]);
      // The old password is overwritten; the cached objects are kept; the rule never expires nix-cache-info.
      expect(await handUserWorks()).toBe("SignatureDoesNotMatch");
      for (const key of handObjects) expect((await s3().statObject("handmade", key)).size).toBeGreaterThan(0);
      expect(readExpiryRules(await s3().getBucketLifecycle("handmade"))).toHaveLength(1);
      expect(readExpiryRules(await s3().getBucketLifecycle("handmade"))[0].keepUpToBytes).toBeGreaterThan(0);
      // Once adopted, the opt-in is no longer needed: the drift check is clean without it.
      await x.stack.removeConfig("nix-cache:adopt");
      const check = await driftPreview(x.stack);
      expect(check.changes).toEqual({});
      expect([check.failed, check.failed ? check.text : ""]).toEqual([false, ""]);
    });
  });
});

test("pulumi stack rename keeps the owner: the drift check is clean, up --refresh changes nothing", async () => {
  const idB = await ownerIdOf(b.stack);
  const newName = `${b.stack.name}-renamed`;
  const r = pulumiCli(b, ["stack", "rename", newName]);
  expect([r.code, r.stderr]).toEqual([0, expect.anything()]);
  renamedB = await LocalWorkspace.selectStack({ stackName: newName, workDir: PROJECT_DIR }, { envVars: b.env });
  const check = await driftPreview(renamedB);
  expect(check.changes).toEqual({});
  expect([check.failed, check.failed ? check.text : ""]).toEqual([false, ""]);
  const events: EngineEvent[] = [];
  expect((await renamedB.up({ refresh: true, onEvent: (e) => events.push(e) })).summary.result).toBe("succeeded");
  expect(changesOf(events)).toEqual({});
  expect(await ownerIdOf(renamedB)).toBe(idB);
  expect((await bucketMarks("cache-b")).tags?.id).toBe(idB);
  expect(await cacheProblems(minio, await renamedB.outputs())).toEqual([]);
});

test("destroying one stack leaves the other fully working", async () => {
  const stackB = renamedB ?? b.stack;
  expect((await stackB.destroy()).summary.result).toBe("succeeded");
  const { t, c } = admin();
  expect((await s3().listBuckets()).map((x) => x.name).sort()).toEqual(["handmade", "nix-cache"]);
  expect(await minioAdmin.userInfo(t, c, "cache-b-builder")).toBeUndefined();
  expect(await minioAdmin.policyDocument(t, c, "cache-b-write")).toBeUndefined();
  expect(await minioAdmin.userInfo(t, c, "cache-b-gc")).toBeUndefined();
  expect(await minioAdmin.policyDocument(t, c, "cache-b-gc")).toBeUndefined();
  expect(await minioAdmin.userInfo(t, c, "nixgc")).toBeDefined();
  expect(await cacheProblems(minio, outA)).toEqual([]);
  const check = await driftPreview(a.stack);
  expect(check.changes).toEqual({});
  expect([check.failed, check.failed ? check.text : ""]).toEqual([false, ""]);
});

test("a stack made before markers marks its own things on its first up, without adopt", async () => {
  // Turn A into what the version before markers left: no owner resource in the state, no owner input, and on
  // MinIO no tags, unmarked policies and the plain rule ID (through the Automation API's stack export/import;
  // secrets stay encrypted for the same stack. The CLI's `--show-secrets` text outgrew spawnSync's 1 MiB
  // buffer once the GC identity's resources, each with its serialized provider, were added).
  const deployment = await a.stack.exportStack();
  type Res = { urn: string; type: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown>; dependencies?: string[]; propertyDependencies?: Record<string, string[]> };
  const resources: Res[] = deployment.deployment.resources;
  const ownerUrn = resources.find((r) => r.type === "nix-cache:index:NixCacheOwner")?.urn;
  expect(ownerUrn).toBeDefined();
  const anonymous = JSON.stringify(anonymousPolicy("nix-cache", false));
  const builder = JSON.stringify(builderPolicy("nix-cache"));
  const gc = JSON.stringify(gcPolicy("nix-cache"));
  deployment.deployment.resources = resources
    .filter((r) => r.urn !== ownerUrn)
    .map((r) => {
      r.dependencies = (r.dependencies ?? []).filter((d) => d !== ownerUrn);
      for (const k of Object.keys(r.propertyDependencies ?? {})) {
        r.propertyDependencies![k] = r.propertyDependencies![k].filter((d) => d !== ownerUrn);
        if (k === "owner") delete r.propertyDependencies![k];
      }
      for (const props of [r.inputs, r.outputs]) {
        if (!props) continue;
        delete props.owner;
        if (r.type.endsWith(":MinioBucketPolicy")) props.policy = anonymous;
        if (r.type.endsWith(":MinioPolicy")) props.document = r.urn.endsWith("::nix-cache-gc-policy") ? gc : builder;
        if (r.type.endsWith(":MinioLifecycle")) props.rules = (props.rules as { id: string }[]).map((rule) => ({ ...rule, id: EXPIRY_RULE_ID }));
      }
      return r;
    });
  await a.stack.importStack(deployment);
  await s3().removeBucketTagging("nix-cache");
  await s3().setBucketPolicy("nix-cache", anonymous);
  const [rule] = readExpiryRules(await s3().getBucketLifecycle("nix-cache"));
  await s3().setBucketLifecycle("nix-cache", lifecycleConfiguration({ ...rule, id: EXPIRY_RULE_ID }) as never);
  const { t, c } = admin();
  await minioAdmin.putPolicy(t, c, "nix-cache-write", builder);
  await minioAdmin.putPolicy(t, c, "nix-cache-gc", gc);
  expect(await bucketMarks("nix-cache")).toEqual({ tags: undefined, policy: undefined, rule: undefined });

  const events: EngineEvent[] = [];
  expect((await a.stack.up({ onEvent: (e) => events.push(e) })).summary.result).toBe("succeeded");
  // The owner id is made, and the bucket, its policy and rule and the builder's policy get their markers.
  expect(changesOf(events)).toEqual({
    "nix-cache-owner": "create",
    "nix-cache-store-bucket": "update",
    "nix-cache-anonymous-policy": "update",
    "nix-cache-expiry-lifecycle": "update",
    "nix-cache-builder-policy": "update",
    "nix-cache-gc-policy": "update",
    // The user's marker is its policy; its state learns the owner id (add-user again with its own password).
    "nix-cache-builder-user": "update",
    "nix-cache-gc-user": "update",
  });
  const idA = await ownerIdOf(a.stack);
  expect(await bucketMarks("nix-cache")).toEqual({ tags: { id: idA, label: `nix-cache/${a.stack.name}` }, policy: { id: idA, label: `nix-cache/${a.stack.name}` }, rule: { id: idA } });
  expect(ownerOfPolicy(await minioAdmin.policyDocument(t, c, "nix-cache-write"))?.id).toBe(idA);
  expect(ownerOfPolicy(await minioAdmin.policyDocument(t, c, "nix-cache-gc"))?.id).toBe(idA);
  expect(await cacheProblems(minio, await a.stack.outputs())).toEqual([]);
  const check = await driftPreview(a.stack);
  expect(check.changes).toEqual({});
  expect([check.failed, check.failed ? check.text : ""]).toEqual([false, ""]);
  // Its things are its own again: a new stack naming its user is refused.
  const y = await createTestStack("it-own-y", cfg({ bucket: "cache-e", builderUser: "nixbuilder", gcUser: "gc-y" }));
  try {
    expect(errorLines(await failureOf(() => y.stack.preview())).join("\n")).toContain(`MinIO user 'nixbuilder' belongs to stack 'nix-cache/${a.stack.name}'`);
  } finally {
    await y.remove();
  }
});

test("a thing another stack adopted is left alone: the old owner's drift check and up --refresh refuse, its destroy keeps it", async () => {
  // Stack Y takes A's builder user over on purpose (nix-cache:adopt): a new password and its own policy.
  const y = await createTestStack("it-own-y", cfg({ bucket: "cache-t", builderUser: "nixbuilder", adopt: "true", gcUser: "gc-y" }));
  try {
    expect((await y.stack.up()).summary.result).toBe("succeeded");
    const outY = await y.stack.outputs();
    expect(await cacheProblems(minio, outY)).toEqual([]);
    const taken = `MinIO user 'nixbuilder' of this stack is now marked as stack 'nix-cache/${y.stack.name}'`;
    const check = await driftPreview(a.stack);
    expect(check.failed).toBe(true);
    expect(errorLines(check.text).join("\n")).toContain(taken);
    // A does not set its password back: Y's builder keeps working.
    expect(errorLines(await failureOf(() => a.stack.up({ refresh: true }))).join("\n")).toContain(taken);
    expect(await cacheProblems(minio, outY)).toEqual([]);
    // A's destroy removes A's bucket and policy, and leaves the user to Y.
    expect((await a.stack.destroy()).summary.result).toBe("succeeded");
    const { t, c } = admin();
    expect((await minioAdmin.userInfo(t, c, "nixbuilder"))?.policies).toEqual(["cache-t-write"]);
    expect(await minioAdmin.policyDocument(t, c, "nix-cache-write")).toBeUndefined();
    expect(await cacheProblems(minio, outY)).toEqual([]);
  } finally {
    await y.stack.destroy().catch(() => undefined);
    await y.remove();
  }
});
