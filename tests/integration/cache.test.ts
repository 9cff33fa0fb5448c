// The user's flow on a real MinIO with the real engine: up → real requests → preview clean → destroy.
import { EngineEvent, OutputMap } from "@pulumi/pulumi/automation";
import { parseCacheInfo } from "../../lib/config/cacheInfo";
import { readExpiryRules, wouldExpire } from "../../lib/minio/lifecycle";
import { publicKeyOf } from "../../lib/signing/signingKey";
import { adminRequest, minioAdmin, s3Client } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { backendText, deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { cacheProblems, stateFingerprint } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
/** The engine's step events of the first up, in order: "pre <name>" when a step starts, "done <name>" when it ends. */
const steps: string[] = [];
const out = (name: string): string => String(outputs[name]?.value);

beforeAll(async () => {
  const onEvent = (e: EngineEvent) => {
    const pre = e.resourcePreEvent?.metadata.urn;
    const done = e.resOutputsEvent?.metadata.urn;
    if (pre) steps.push(`pre ${pre.split("::").pop()}`);
    if (done) steps.push(`done ${done.split("::").pop()}`);
  };
  // retention=lifecycle: this file checks the expiry rule (the default, retention=gc, has none: gcIdentity.test.ts).
  ({ minio, t, outputs } = await deployCache("it-cache", { priority: "30", retention: "lifecycle", expireDays: "3" }, { onEvent }));
});

afterAll(() => removeDeployment(t, minio));

const admin = () => s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, { accessKey: minio.rootUser, secretKey: minio.rootPassword });
const builder = () =>
  s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, { accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
const codeOf = async (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

describe("pulumi up creates a working cache", () => {
  test("outputs describe the cache", () => {
    expect(out("substituterUrl")).toBe(`${minio.endpoint}/nix-cache`);
    expect(out("publicKey")).toMatch(/^s3\.homelab\.local-1:[A-Za-z0-9+/]{43}=$/);
    expect(publicKeyOf(out("secretKey"))).toBe(out("publicKey"));
    expect(outputs.secretKey.secret).toBe(true);
    expect(outputs.builderSecretKey.secret).toBe(true);
    expect(outputs.awsCredentials.secret).toBe(true);
    expect(out("builderAccessKey")).toBe("nixbuilder");
    expect(out("builderSecretKey").length).toBeGreaterThanOrEqual(32);
    expect(out("awsCredentials")).toContain(`[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = ${out("builderSecretKey")}`);
    expect(out("pushUrl")).toBe(
      `s3://nix-cache?profile=nixbuilder&endpoint=http://127.0.0.1:${minio.port}&region=us-east-1&compression=zstd&compression-level=9`,
    );
    expect(out("pushCommand")).toBe(`nix copy --to '${out("pushUrl")}' ./result`);
    expect(out("signCommand")).toContain("nix store sign --key-file");
    expect(out("nixosModule")).toContain(`extra-substituters = [ "${out("substituterUrl")}" ];`);
    expect(out("nixosModule")).toContain(`extra-trusted-public-keys = [ "${out("publicKey")}" ];`);
  });

  test("anonymous clients read nix-cache-info with the configured values", async () => {
    const res = await fetch(`${out("substituterUrl")}/nix-cache-info`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/x-nix-cache-info");
    expect(parseCacheInfo(await res.text())).toEqual({ storeDir: "/nix/store", wantMassQuery: true, priority: 30 });
  });

  test("anonymous clients get a plain miss for a missing narinfo, and cannot write, delete or list", async () => {
    const base = out("substituterUrl");
    expect((await fetch(`${base}/0000000000000000000000000000000a.narinfo`)).status).toBe(404);
    expect((await fetch(`${base}/anon-probe`, { method: "PUT", body: "x" })).status).toBe(403);
    expect((await fetch(`${base}/nix-cache-info`, { method: "DELETE" })).status).toBe(403);
    expect((await fetch(`${base}/?list-type=2`)).status).toBe(403);
    expect((await fetch(`${base}/nix-cache-info`)).status).toBe(200);
  });

  test("the builder can upload and read, but not delete, touch other buckets or use the admin API", async () => {
    const b = builder();
    await b.putObject("nix-cache", "builder-probe.narinfo", Buffer.from("StorePath: /nix/store/x"));
    expect((await b.statObject("nix-cache", "builder-probe.narinfo")).size).toBe(23);
    expect(await codeOf(b.removeObject("nix-cache", "builder-probe.narinfo"))).toBe("AccessDenied");
    expect(await codeOf(b.removeObject("nix-cache", "nix-cache-info"))).toBe("AccessDenied");
    await admin().makeBucket("other-bucket");
    expect(await codeOf(b.putObject("other-bucket", "x", Buffer.from("x")))).toBe("AccessDenied");
    // MinIO lists to a user only the buckets its policy reaches.
    expect((await b.listBuckets()).map((x) => x.name)).toEqual(["nix-cache"]);
    const adminCall = adminRequest(
      { endpoint: minio.endpoint, region: "us-east-1" },
      { accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") },
      "GET",
      "list-users",
      {},
    );
    await expect(adminCall).rejects.toThrow(/Access Denied|AccessDenied/);
    // The probe object stays: only the admin may delete, and nothing is lost by accident.
    await admin().removeObject("nix-cache", "builder-probe.narinfo");
    await admin().removeBucket("other-bucket");
  });

  test("the lifecycle rule expires cache objects but never nix-cache-info", async () => {
    const rules = readExpiryRules(await admin().getBucketLifecycle("nix-cache"));
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ enabled: true, days: 3 });
    const info = await admin().statObject("nix-cache", "nix-cache-info");
    expect(wouldExpire(rules, "nix-cache-info", info.size)).toBe(false);
    // The smallest real narinfo is far larger than nix-cache-info; a 100-byte NAR expires too.
    expect(wouldExpire(rules, "nar/x.nar.zst", 100)).toBe(true);
  });

  test("the bucket policy and the lifecycle are written one after the other, never at once", () => {
    // MinIO keeps both in one metadata file, updated by an unlocked read-modify-write: two writes at once
    // can lose one (seen: 12 of 40 concurrent pairs). The program orders them.
    const policyDone = steps.indexOf("done nix-cache-anonymous-policy");
    const lifecycleStarts = steps.indexOf("pre nix-cache-expiry-lifecycle");
    expect(policyDone).toBeGreaterThanOrEqual(0);
    expect(lifecycleStarts).toBeGreaterThan(policyDone);
  });

  test("preview --refresh shows no changes", async () => {
    const preview = await t.stack.preview({ refresh: true, expectNoChanges: true });
    expect(preview.changeSummary.same).toBeGreaterThan(0);
    expect(Object.keys(preview.changeSummary).filter((k) => k !== "same")).toEqual([]);
  });

  test("no secret appears in plain text in the state", async () => {
    const state = backendText(t.backendDir);
    expect(state).toContain("nixbuilder");
    // Booleans, so a failure never prints the secret it found.
    expect(state.includes(out("builderSecretKey"))).toBe(false);
    expect(state.includes(out("secretKey").split(":")[1])).toBe(false);
    expect(state.includes(minio.rootPassword)).toBe(false);
  });
});

describe("pulumi destroy", () => {
  test("with cached objects and no forceDestroy, refuses before deleting anything: the cache keeps working", async () => {
    await builder().putObject("nix-cache", "kept.narinfo", Buffer.from("StorePath: /nix/store/kept"));
    const before = await stateFingerprint(t.stack);
    const refused = await t.stack.destroy().then(
      () => "",
      (e: Error) => e.message,
    );
    expect(refused).toContain("bucket 'nix-cache' still holds 1 cached objects (e.g. kept.narinfo) and nix-cache:forceDestroy is false; nothing was deleted.");
    expect(refused).toContain("pulumi config set nix-cache:forceDestroy true && pulumi up && pulumi destroy");
    // Not one resource went: hosts still read nix-cache-info anonymously, the builder still uploads.
    expect(await stateFingerprint(t.stack)).toBe(before);
    expect(await cacheProblems(minio, outputs, 30)).toEqual([]);
    expect((await admin().statObject("nix-cache", "kept.narinfo")).size).toBeGreaterThan(0);
  });

  test("with forceDestroy, removes everything", async () => {
    await t.stack.setConfig("nix-cache:forceDestroy", { value: "true" });
    await t.stack.up({ refresh: true });
    const destroyed = await t.stack.destroy();
    expect(destroyed.summary.result).toBe("succeeded");
    expect(await admin().bucketExists("nix-cache")).toBe(false);
    const users = await adminRequest(
      { endpoint: minio.endpoint, region: "us-east-1" },
      { accessKey: minio.rootUser, secretKey: minio.rootPassword },
      "GET",
      "list-canned-policies",
      {},
    );
    expect(users.body.toString()).not.toContain("nix-cache-write");
    expect(users.body.toString()).not.toContain("nix-cache-gc");
    const root = { accessKey: minio.rootUser, secretKey: minio.rootPassword };
    for (const user of ["nixbuilder", "nixgc"]) expect(await minioAdmin.userInfo({ endpoint: minio.endpoint, region: "us-east-1" }, root, user)).toBeUndefined();
  });
});
