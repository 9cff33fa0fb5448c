// `npm run verify` on a private cache (nix-cache:access private), run as users run it (a child process reading
// the stack through the pulumi CLI) against one real deployment: healthy (anonymous reads refused, the reader
// reads and cannot write or delete, the read proxy answers a host's token and refuses a request without one),
// then with an anonymous download policy added by hand, as `mc anonymous set download` adds one.
import { OutputMap } from "@pulumi/pulumi/automation";
import { checksFor } from "../../lib/verify/checks";
import { startProxy } from "../../lib/proxy/server";
import { tokenHash } from "../../lib/proxy/tokens";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, removeDeployment, TestStack } from "../../harness/stack";
import { BUCKET, rootS3, runVerifyCli, VerifyRun } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let proxy: { url: string; close(): Promise<void> };
const out = (name: string): string => String(outputs[name]?.value);

/** readerTokens as the stack gives it: an object (or its JSON text). */
const tokens = (): Record<string, string> => {
  const v = outputs.readerTokens?.value as unknown;
  return (typeof v === "string" ? JSON.parse(v) : v) as Record<string, string>;
};


beforeAll(async () => {
  // deployCache's steps, with the list setting (Pulumi.yaml types readerHosts as array<string>) set by path.
  minio = await startMinio();
  t = await createTestStack("it-verify-private", minioConfig(minio, { access: "private" }));
  await t.stack.setConfig("nix-cache:readerHosts[0]", { value: "laptop" }, true);
  expect((await t.stack.up()).summary.result).toBe("succeeded");
  outputs = await t.stack.outputs();
  // The read proxy hosts run (lib/proxy/server.ts), serving this stack as the reader.
  proxy = await startProxy({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: { endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, accessKey: out("readerAccessKey"), secretKey: out("readerSecretKey") },
    tokenHashes: new Map(Object.entries(tokens()).map(([host, token]) => [host, tokenHash(token)])),
  });
});

afterAll(async () => {
  await proxy?.close();
  await removeDeployment(t, minio);
});

/** Verify's output never holds a secret: the reader's, a token, the builder's, the signing key, the admin's. */
function expectNoSecrets(run: VerifyRun) {
  const text = run.stdout + run.stderr;
  for (const secret of [out("readerSecretKey"), ...Object.values(tokens()), out("builderSecretKey"), out("secretKey").split(":")[1], minio.rootPassword]) {
    expect(secret.length).toBeGreaterThan(8);
    expect(text).not.toContain(secret);
  }
}

async function probeObjectsLeft(): Promise<string[]> {
  const names: string[] = [];
  for await (const o of rootS3(minio).listObjectsV2(BUCKET, "nix-cache-verify-probe", true)) if (o.name) names.push(o.name);
  return names;
}

describe("npm run verify on a private cache", () => {
  test("passes every private check, the read proxy's too (--proxy); leaves no probe object, prints no secret", async () => {
    const run = await runVerifyCli(t, ["--stack", t.stack.name, "--proxy", proxy.url]);
    expect(run.stderr).toBe("");
    const checks = checksFor("private", true);
    expect([...run.verdicts.entries()]).toEqual(checks.map((c) => [c, "PASS"]));
    expect(run.stdout).toContain(`verify: stack ${t.stack.name}, private cache ${out("substituterUrl")} read as ${out("readerAccessKey")}, `);
    expect(run.stdout).toContain(`read proxy ${proxy.url} with laptop's token`);
    expect(run.stdout).toMatch(/^PASS +anonymous-read +anonymous GET nix-cache-info, HEAD nix-cache-info, GET e{32}\.narinfo are refused \(403\)$/m);
    expect(run.stdout).toMatch(/^PASS +reader-read +the reader \(nixreader\) reads nix-cache-info \(StoreDir \/nix\/store, WantMassQuery 1, Priority 40\); a missing narinfo answers 404$/m);
    expect(run.stdout).toMatch(/^PASS +reader-write +the reader \(nixreader\) cannot upload \(AccessDenied\)$/m);
    expect(run.stdout).toMatch(/^PASS +reader-delete +the reader \(nixreader\) cannot delete \(AccessDenied\)$/m);
    expect(run.stdout).toMatch(new RegExp(`^PASS +proxy +${proxy.url}/nix-cache-info: laptop's token reads nix-cache-info \\(200\\), no credentials get 401$`, "m"));
    expect(run.stdout).toMatch(new RegExp(`^verify: all ${checks.length} checks passed$`, "m"));
    expect(run.status).toBe(0);
    expectNoSecrets(run);
    expect(await probeObjectsLeft()).toEqual([]);
  });

  test("without --proxy the proxy is not checked, and the header says how to; an unknown --proxy-host exits 2 naming the hosts", async () => {
    const run = await runVerifyCli(t);
    expect([...run.verdicts.keys()]).toEqual(checksFor("private", false));
    expect(run.stdout).toContain(`read proxy not checked (give --proxy URL; hosts use ${out("proxyUrl")})`);
    expect(run.status).toBe(0);

    const unknown = await runVerifyCli(t, ["--stack", t.stack.name, "--proxy", proxy.url, "--proxy-host", "phone"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("--proxy-host phone has no token in the stack's readerTokens (hosts: laptop)");
    expect(unknown.stdout).not.toMatch(/^(PASS|FAIL) /m);
  });

  test("an anonymous download policy added by hand → anonymous-read fails naming mc anonymous set download; the printed fix (up --refresh) removes it", async () => {
    const policy = {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: [`arn:aws:s3:::${BUCKET}/*`] }],
    };
    await rootS3(minio).setBucketPolicy(BUCKET, JSON.stringify(policy));
    try {
      const run = await runVerifyCli(t, ["--stack", t.stack.name, "--proxy", proxy.url]);
      expect(run.status).toBe(1);
      expect(run.stdout).toMatch(/^FAIL +anonymous-read +anonymous GET nix-cache-info answers 200, HEAD nix-cache-info answers 200, GET e{32}\.narinfo answers 404 /m);
      expect(run.stdout).toContain("was `mc anonymous set download` run on the bucket?");
      expect(run.stdout).toMatch(/^ +fix: run `pulumi up --refresh` on this stack: .*`mc anonymous set download`/m);
      expect(run.stdout).toMatch(/^verify: 1 of \d+ checks failed: anonymous-read$/m);
      expectNoSecrets(run);
      expect(await probeObjectsLeft()).toEqual([]);

      expect((await t.stack.up({ refresh: true })).summary.result).toBe("succeeded");
      const again = await runVerifyCli(t, ["--stack", t.stack.name, "--proxy", proxy.url]);
      expect(again.verdicts.get("anonymous-read")).toBe("PASS");
      expect(again.status).toBe(0);
    } finally {
      // Gone already when the refresh ran; removed here when the test stopped before it.
      await rootS3(minio).setBucketPolicy(BUCKET, "").catch(() => undefined);
    }
  });
});
