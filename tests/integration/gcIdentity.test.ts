// The GC's identity and the retention modes on a real MinIO with the real engine, one stack for every case:
// up (retention=gc, the default) → real requests as the GC user and the builder → the bucket's lifecycle →
// preview clean → secrets in the state → switch to retention=lifecycle and back (nothing deleted) → destroy.
import { OutputMap } from "@pulumi/pulumi/automation";
import { expiryRuleId, ownerOfRules } from "../../lib/minio/ownership";
import { readExpiryRules, wouldExpire } from "../../lib/minio/lifecycle";
import { adminRequest, errorCode, minioAdmin, readTextObject, s3Client } from "../../providers/minioClients";
import { McAnonymous, McFailure, McLifecycle, mcFor, McPolicyInfo, McUserInfo } from "../../harness/mc";
import { MinioServer } from "../../harness/minio";
import { backendText, deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { BUCKET, codeOf, driftPreview, rootOf, rootS3, targetOf } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
const out = (name: string): string => String(outputs[name]?.value);

// Keys as Nix writes them: a narinfo at the root, its NAR under nar/.
const NARINFO = "0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq.narinfo";
const NAR = "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz";
const NARINFO_TEXT = `StorePath: /nix/store/0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq-hello\nURL: ${NAR}\nCompression: xz\n`;

beforeAll(async () => {
  ({ minio, t, outputs } = await deployCache("it-gcid", { retainDays: "5" }));
});

afterAll(() => removeDeployment(t, minio));

const gc = () => s3Client(targetOf(minio), { accessKey: out("gcAccessKey"), secretKey: out("gcSecretKey") });
const builder = () => s3Client(targetOf(minio), { accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
const body = (s: string) => Buffer.from(s, "utf8");

/** Every key in the bucket, as root sees it. */
async function allKeys(): Promise<string[]> {
  const res = await rootS3(minio).listObjectsV2Query(BUCKET, "", "", "", 1000, "");
  return res.objects.map((o) => o.name).filter((n): n is string => typeof n === "string").sort();
}

/** The bucket's lifecycle as MinIO returns it, read as rules ([] when the bucket has none). */
async function liveRules() {
  try {
    return readExpiryRules(await rootS3(minio).getBucketLifecycle(BUCKET));
  } catch (err) {
    if (errorCode(err) === "NoSuchLifecycleConfiguration") return [];
    throw err;
  }
}

describe("outputs", () => {
  test("the GC user's credentials, the retention mode and period", () => {
    expect(out("gcAccessKey")).toBe("nixgc");
    expect(out("gcSecretKey").length).toBeGreaterThanOrEqual(32);
    expect(out("gcSecretKey")).not.toBe(out("builderSecretKey"));
    expect(out("gcCredentials")).toBe(`[nixgc]\naws_access_key_id = nixgc\naws_secret_access_key = ${out("gcSecretKey")}\n`);
    expect(outputs.gcSecretKey.secret).toBe(true);
    expect(outputs.gcCredentials.secret).toBe(true);
    expect(outputs.gcAccessKey.secret).toBe(false);
    expect(out("retention")).toBe("gc");
    expect(outputs.retainDays.value).toBe(5);
  });
});

describe("mc, MinIO's own client, as an independent judge of what `pulumi up` made", () => {
  // Read-only calls on the fresh stack (before any case below writes), parsed from mc's --json answers.
  test("users and their policies, the anonymous policy, and no lifecycle rule (retention=gc)", () => {
    const mc = mcFor(minio);
    try {
      expect(mc.json<McUserInfo>(["admin", "user", "info", "s3", "nixbuilder"])).toMatchObject({ policyName: "nix-cache-write", userStatus: "enabled" });
      expect(mc.json<McUserInfo>(["admin", "user", "info", "s3", "nixgc"])).toMatchObject({ policyName: "nix-cache-gc", userStatus: "enabled" });

      // The chapter's seven actions, each on the bucket or on its objects, nothing else and no Deny.
      const write = mc.json<McPolicyInfo>(["admin", "policy", "info", "s3", "nix-cache-write"]).policyInfo.Policy.Statement;
      expect(write.every((s) => s.Effect === "Allow")).toBe(true);
      expect([...new Set(write.flatMap((s) => s.Action))].sort()).toEqual([
        "s3:AbortMultipartUpload",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
      ]);
      expect([...new Set(write.flatMap((s) => s.Resource))].sort()).toEqual(["arn:aws:s3:::nix-cache", "arn:aws:s3:::nix-cache/*"]);

      // Not the chapter's `download`: anonymous clients read objects but cannot list.
      const anonymous = mc.json<McAnonymous>(["anonymous", "get", "s3/nix-cache"]);
      expect(anonymous.permission).toBe("custom");
      expect(anonymous.anonymous?.Statement.map((s) => ({ Effect: s.Effect, Principal: s.Principal, Action: s.Action, Resource: s.Resource }))).toEqual([
        { Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::nix-cache/*"] },
      ]);

      const lifecycle = mc.jsonOutcome<McLifecycle>(["ilm", "rule", "ls", "s3/nix-cache"]);
      expect((lifecycle as McFailure).error?.cause?.error?.Code).toBe("NoSuchLifecycleConfiguration");
    } finally {
      mc.remove();
    }
  });
});

describe("the GC user (real requests with the stack's gcAccessKey/gcSecretKey)", () => {
  test("lists, reads and deletes a cache object, and writes its lease and pins under gc/", async () => {
    const root = rootS3(minio);
    await root.putObject(BUCKET, NARINFO, body(NARINFO_TEXT));
    await root.putObject(BUCKET, NAR, body("nar bytes"));
    const g = gc();
    const listed = await g.listObjectsV2Query(BUCKET, "", "", "", 1000, "");
    expect(listed.objects.map((o) => o.name).sort()).toEqual([NAR, NARINFO, "nix-cache-info"].sort());
    expect((await readTextObject(g, BUCKET, NARINFO))?.content).toBe(NARINFO_TEXT);
    expect((await g.statObject(BUCKET, NAR)).size).toBe(9);
    await g.removeObject(BUCKET, NAR);
    await g.removeObject(BUCKET, NARINFO);
    expect(await allKeys()).toEqual(["nix-cache-info"]);

    await g.putObject(BUCKET, "gc/lease", body('{"holder":"test"}'));
    await g.putObject(BUCKET, "gc/pins/host-a", body("/nix/store/0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq-hello"));
    expect((await readTextObject(root, BUCKET, "gc/lease"))?.content).toBe('{"holder":"test"}');
    await g.removeObject(BUCKET, "gc/lease");
    await g.removeObject(BUCKET, "gc/pins/host-a");
    expect(await allKeys()).toEqual(["nix-cache-info"]);
  });

  test("cannot write a cached path: no PUT of a narinfo or a NAR, no copy onto one", async () => {
    const g = gc();
    expect(await codeOf(g.putObject(BUCKET, NARINFO, body(NARINFO_TEXT)))).toBe("AccessDenied");
    expect(await codeOf(g.putObject(BUCKET, "nar/x.nar.xz", body("x")))).toBe("AccessDenied");
    expect(await codeOf(g.putObject(BUCKET, "gcx/lease", body("x")))).toBe("AccessDenied");
    // A cached path the GC could read cannot be overwritten by a server-side copy either.
    await rootS3(minio).putObject(BUCKET, NARINFO, body(NARINFO_TEXT));
    const { CopyConditions } = await import("minio");
    expect(await codeOf(g.copyObject(BUCKET, "nar/y.nar.xz", `/${BUCKET}/${NARINFO}`, new CopyConditions()))).toBe("AccessDenied");
    expect((await readTextObject(rootS3(minio), BUCKET, NARINFO))?.content).toBe(NARINFO_TEXT);
    await rootS3(minio).removeObject(BUCKET, NARINFO);
    expect(await allKeys()).toEqual(["nix-cache-info"]);
  });

  test("cannot delete or overwrite nix-cache-info (explicit Deny), which stays as the stack wrote it", async () => {
    const before = await readTextObject(rootS3(minio), BUCKET, "nix-cache-info");
    expect(before?.content).toContain("StoreDir: /nix/store");
    const g = gc();
    expect(await codeOf(g.removeObject(BUCKET, "nix-cache-info"))).toBe("AccessDenied");
    expect(await codeOf(g.putObject(BUCKET, "nix-cache-info", body("StoreDir: /tmp\n")))).toBe("AccessDenied");
    // Batch delete (what a GC run sends) is checked per key as DeleteObject.
    // (The SDK's type says { Error: { Code } }; minio 8.0.7 returns the error element itself.)
    const batch = (await g.removeObjects(BUCKET, ["nix-cache-info"])) as unknown as ({ Code?: string; Error?: { Code?: string } } | null)[];
    expect(batch.map((e) => e?.Code ?? e?.Error?.Code ?? JSON.stringify(e))).toEqual(["AccessDenied"]);
    expect(await readTextObject(rootS3(minio), BUCKET, "nix-cache-info")).toEqual(before);
  });

  test("cannot touch another bucket, make a bucket or use the admin API", async () => {
    const root = rootS3(minio);
    await root.makeBucket("other-bucket");
    await root.putObject("other-bucket", "kept.narinfo", body("StorePath: /nix/store/kept"));
    const g = gc();
    expect(await codeOf(g.getObject("other-bucket", "kept.narinfo"))).toBe("AccessDenied");
    expect(await codeOf(g.removeObject("other-bucket", "kept.narinfo"))).toBe("AccessDenied");
    expect(await codeOf(g.putObject("other-bucket", "gc/lease", body("x")))).toBe("AccessDenied");
    expect(await codeOf(g.listObjectsV2Query("other-bucket", "", "", "", 10, ""))).toBe("AccessDenied");
    expect(await codeOf(g.makeBucket("gc-made-bucket"))).toBe("AccessDenied");
    expect(await root.bucketExists("gc-made-bucket")).toBe(false);
    // MinIO lists to a user only the buckets its policy reaches.
    expect((await g.listBuckets()).map((b) => b.name)).toEqual([BUCKET]);
    const adminCall = adminRequest(targetOf(minio), { accessKey: out("gcAccessKey"), secretKey: out("gcSecretKey") }, "GET", "list-users", {});
    await expect(adminCall).rejects.toThrow(/Access Denied|AccessDenied/);
    expect((await readTextObject(root, "other-bucket", "kept.narinfo"))?.content).toBe("StorePath: /nix/store/kept");
    await root.removeObject("other-bucket", "kept.narinfo");
    await root.removeBucket("other-bucket");
  });

  test("the builder still cannot delete (only the GC does)", async () => {
    const b = builder();
    await b.putObject(BUCKET, NARINFO, body(NARINFO_TEXT));
    expect(await codeOf(b.removeObject(BUCKET, NARINFO))).toBe("AccessDenied");
    expect(await codeOf(b.removeObject(BUCKET, "nix-cache-info"))).toBe("AccessDenied");
    expect((await readTextObject(rootS3(minio), BUCKET, NARINFO))?.content).toBe(NARINFO_TEXT);
    await gc().removeObject(BUCKET, NARINFO);
    expect(await allKeys()).toEqual(["nix-cache-info"]);
  });
});

describe("retention=gc: the bucket's lifecycle", () => {
  test("holds no rule: nothing, not even a NAR, ever expires by age", async () => {
    expect(await liveRules()).toEqual([]);
    expect(await codeOf(rootS3(minio).getBucketLifecycle(BUCKET))).toBe("NoSuchLifecycleConfiguration");
  });

  test("MinIO refuses an AbortIncompleteMultipartUpload-only rule (why gc mode declares none; lib/minio/lifecycle.ts)", async () => {
    const root = rootS3(minio);
    await root.makeBucket("abort-probe");
    const abortOnly = { Rule: [{ ID: "abort", Status: "Enabled", Filter: { Prefix: "" }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }] };
    const failure = await root.setBucketLifecycle("abort-probe", abortOnly as never).then(
      () => "accepted",
      (err: Error & { code?: string }) => `${err.code}: ${err.message}`,
    );
    expect(failure).toMatch(/^InvalidArgument: The XML you provided was not well-formed/);
    await root.removeBucket("abort-probe");
  });

  test("preview --refresh shows no changes", async () => {
    const preview = await t.stack.preview({ refresh: true, expectNoChanges: true });
    expect(preview.changeSummary.same).toBeGreaterThan(0);
    expect(Object.keys(preview.changeSummary).filter((k) => k !== "same")).toEqual([]);
  });

  test("an expiry rule added by hand (the chapter's mc ilm rule add) shows as drift, and up --refresh removes it", async () => {
    const root = rootS3(minio);
    await root.setBucketLifecycle(BUCKET, { Rule: [{ ID: "by-hand", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 } }] } as never);
    const drift = await driftPreview(t.stack);
    expect(drift.failed).toBe(true);
    expect(drift.changes).toEqual({ "nix-cache-expiry-lifecycle": "update" });
    const up = await t.stack.up({ refresh: true });
    expect(up.summary.result).toBe("succeeded");
    expect(await liveRules()).toEqual([]);
    expect((await driftPreview(t.stack)).failed).toBe(false);
  });

  test("no secret appears in plain text in the state", () => {
    const state = backendText(t.backendDir);
    expect(state).toContain("nixgc");
    expect(state).toContain("nix-cache-gc");
    // Booleans, so a failure never prints the secret it found.
    expect(state.includes(out("gcSecretKey"))).toBe(false);
    expect(state.includes(out("builderSecretKey"))).toBe(false);
    expect(state.includes(minio.rootPassword)).toBe(false);
  });
});

describe("switching retention on the same stack deletes no object", () => {
  const cached = [NARINFO, NAR, "gc/pins/host-a"];

  beforeAll(async () => {
    const root = rootS3(minio);
    for (const key of cached) await root.putObject(BUCKET, key, body(`${key} ${"x".repeat(200)}`));
  });

  test("retention=lifecycle: the owner-marked expiry rule is set (nix-cache-info kept), every object stays", async () => {
    const before = await allKeys();
    expect(before).toEqual([...cached, "nix-cache-info"].sort());
    await t.stack.setConfig("nix-cache:retention", { value: "lifecycle" });
    await t.stack.setConfig("nix-cache:expireDays", { value: "9" });
    const up = await t.stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toMatchObject({ update: 1 });
    expect((await t.stack.outputs()).retention.value).toBe("lifecycle");
    const rules = await liveRules();
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ enabled: true, days: 9, prefix: "" });
    const owner = ownerOfRules(rules);
    expect(owner).toBeDefined();
    expect(rules[0].id).toBe(expiryRuleId(owner?.id));
    const info = await rootS3(minio).statObject(BUCKET, "nix-cache-info");
    expect(wouldExpire(rules, "nix-cache-info", info.size)).toBe(false);
    expect(wouldExpire(rules, NAR, 209)).toBe(true);
    expect(await allKeys()).toEqual(before);
    expect((await driftPreview(t.stack)).failed).toBe(false);
  });

  test("back to retention=gc: the expiry rule is removed, every object stays", async () => {
    const before = await allKeys();
    await t.stack.setConfig("nix-cache:retention", { value: "gc" });
    const up = await t.stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toMatchObject({ update: 1 });
    expect(await liveRules()).toEqual([]);
    expect(await allKeys()).toEqual(before);
    expect((await driftPreview(t.stack)).failed).toBe(false);
  });
});

describe("pulumi destroy", () => {
  test("removes the GC user and its policy with the rest", async () => {
    await t.stack.setConfig("nix-cache:forceDestroy", { value: "true" });
    await t.stack.up();
    const destroyed = await t.stack.destroy();
    expect(destroyed.summary.result).toBe("succeeded");
    expect(await rootS3(minio).bucketExists(BUCKET)).toBe(false);
    expect(await minioAdmin.userInfo(targetOf(minio), rootOf(minio), "nixgc")).toBeUndefined();
    expect(await minioAdmin.userInfo(targetOf(minio), rootOf(minio), "nixbuilder")).toBeUndefined();
    const policies = (await adminRequest(targetOf(minio), rootOf(minio), "GET", "list-canned-policies", {})).body.toString();
    expect(policies).not.toContain("nix-cache-gc");
    expect(policies).not.toContain("nix-cache-write");
  });
});
