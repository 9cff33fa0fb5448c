// `npm run verify` run as users run it (a child process reading the stack through the pulumi CLI) against a
// real deployment: healthy, then broken by hand with plain admin/S3 requests, one part at a time. Each break
// must make verify exit non-zero naming the check; the part is put back before the next one.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { narinfoKey } from "../../lib/gc/plan";
import { fingerprint, parseNarinfo } from "../../lib/signing/narinfo";
import { S3Rest } from "../../lib/s3/client";
import { signDetached } from "../../lib/signing/signingKey";
import { judgeTls } from "../../lib/verify/checks";
import { minioAdmin, s3Client } from "../../providers/minioClients";
import { tlsCheck } from "../../scripts/verifyProbe";
import { chain, GeneratedPath, narinfoText, pushLikeNix } from "../../harness/cacheFill";
import { MinioServer } from "../../harness/minio";
import { deployCache, PROJECT_DIR, removeDeployment, TestStack } from "../../harness/stack";
import { requireTool } from "../../harness/toolchain";
import { runVerifyCli, VerifyRun } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
const out = (name: string): string => String(outputs[name]?.value);
const BUCKET = "nix-cache";

beforeAll(async () => {
  ({ minio, t, outputs } = await deployCache("it-verify"));
});

afterAll(() => removeDeployment(t, minio));

const target = () => ({ endpoint: minio.endpoint, region: "us-east-1" });
const rootCreds = () => ({ accessKey: minio.rootUser, secretKey: minio.rootPassword });
const admin = () => s3Client(target(), rootCreds());

/** `npm run verify -- --stack NAME` on this file's stack. */
const runVerify = (args?: string[]): Promise<VerifyRun> => runVerifyCli(t, args);

/** Verify's output never holds a secret: builder secret, signing secret, admin password. */
function expectNoSecrets(run: VerifyRun) {
  const text = run.stdout + run.stderr;
  expect(text).not.toContain(out("builderSecretKey"));
  expect(text).not.toContain(out("secretKey").split(":")[1]);
  expect(text).not.toContain(minio.rootPassword);
}

async function probeObjectsLeft(): Promise<string[]> {
  const names: string[] = [];
  for await (const o of admin().listObjectsV2(BUCKET, "nix-cache-verify-probe", true)) {
    if (o.name) names.push(o.name);
  }
  return names;
}

/** Runs verify on a broken deployment and checks that it fails, naming `check`, with a fix, and cleans up. */
async function expectFailure(check: string): Promise<VerifyRun> {
  const run = await runVerify();
  // The detail may go on over indented lines (closures names each broken path), then the fix.
  expect(run.stdout).toMatch(new RegExp(`^FAIL +${check} .*(\\n {20,}(?!fix: ).*)*\\n +fix: `, "m"));
  expect(run.stdout).toMatch(new RegExp(`^verify: \\d+ of 12 checks failed: .*${check}`, "m"));
  expect(run.status).toBe(1);
  expectNoSecrets(run);
  expect(await probeObjectsLeft()).toEqual([]);
  return run;
}

describe("npm run verify", () => {
  test("passes every check on a fresh deployment, prints a summary, leaves no probe object", async () => {
    // Through npm, as users run it (the other runs of this file start scripts/verify.ts directly).
    const run = await runVerifyCli(t, ["--stack", t.stack.name], "npm");
    expect(run.stderr).toBe("");
    expect([...run.verdicts.values()]).toEqual(Array(12).fill("PASS"));
    expect(run.stdout).toContain(`verify: stack ${t.stack.name}, cache ${out("substituterUrl")}`);
    expect(run.stdout).toMatch(/^verify: all 12 checks passed$/m);
    expect(run.stdout).toMatch(/^PASS +narinfo-signatures +the cache holds no narinfo yet: nothing to check$/m);
    expect(run.stdout).toMatch(/^PASS +closures +the cache holds no narinfo yet: nothing to check$/m);
    expect(run.stdout).toMatch(/^PASS +lifecycle +retention gc: no lifecycle rule expires cached objects/m);
    expect(run.status).toBe(0);
    expectNoSecrets(run);
    expect(await probeObjectsLeft()).toEqual([]);
  });

  test("bucket policy removed → cache-info fails (anonymous clients are refused)", async () => {
    const saved = await admin().getBucketPolicy(BUCKET);
    await admin().setBucketPolicy(BUCKET, "");
    try {
      const run = await expectFailure("cache-info");
      expect(run.stdout).toContain("no longer allows anonymous reads");
    } finally {
      await admin().setBucketPolicy(BUCKET, saved);
    }
  });

  test("bucket policy widened to anonymous PutObject → anonymous-write fails, and its probe is removed", async () => {
    const saved = await admin().getBucketPolicy(BUCKET);
    const widened = JSON.parse(saved) as { Statement: { Action: string[] | string }[] };
    for (const s of widened.Statement) s.Action = [...[s.Action].flat(), "s3:PutObject"];
    await admin().setBucketPolicy(BUCKET, JSON.stringify(widened));
    try {
      const run = await expectFailure("anonymous-write");
      expect(run.verdicts.get("anonymous-delete")).toBe("PASS");
    } finally {
      await admin().setBucketPolicy(BUCKET, saved);
    }
  });

  test("builder policy widened with s3:DeleteObject → builder-delete fails", async () => {
    const info = await minioAdmin.userInfo(target(), rootCreds(), out("builderAccessKey"));
    const policyName = info?.policies[0] ?? "";
    expect(policyName).not.toBe("");
    const saved = await minioAdmin.policyDocument(target(), rootCreds(), policyName);
    const widened = JSON.parse(JSON.stringify(saved)) as { Statement: { Action: string[]; Resource: string[] }[] };
    for (const s of widened.Statement) if (s.Resource.some((r) => r.endsWith("/*"))) s.Action.push("s3:DeleteObject");
    await minioAdmin.putPolicy(target(), rootCreds(), policyName, JSON.stringify(widened));
    try {
      const run = await expectFailure("builder-delete");
      expect(run.stdout).toContain("a leaked builder key can wipe the cache");
      expect(run.verdicts.get("builder-upload")).toBe("PASS");
    } finally {
      await minioAdmin.putPolicy(target(), rootCreds(), policyName, JSON.stringify(saved));
    }
  });

  test("builder disabled → builder-upload fails", async () => {
    await minioAdmin.setUserStatus(target(), rootCreds(), out("builderAccessKey"), "disabled");
    try {
      const run = await expectFailure("builder-upload");
      expect(run.verdicts.get("cache-info")).toBe("PASS");
    } finally {
      await minioAdmin.setUserStatus(target(), rootCreds(), out("builderAccessKey"), "enabled");
    }
  });

  test("retention gc: an expiry rule added by hand → lifecycle fails (it breaks closures); the printed fix (up --refresh) removes it", async () => {
    await admin().setBucketLifecycle(BUCKET, { Rule: [{ ID: "everything", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 } }] });
    const run = await expectFailure("lifecycle");
    expect(run.stdout).toContain("retention is gc, but the bucket's lifecycle expires cached objects: everything (7 days)");
    expect(run.stdout).toContain("closures break");
    expect(run.stdout).toMatch(/^ +fix: run `pulumi up --refresh`/m);

    const up = await t.stack.up({ refresh: true });
    expect(up.summary.result).toBe("succeeded");
    const again = await runVerify();
    expect(again.verdicts.get("lifecycle")).toBe("PASS");
    expect(again.status).toBe(0);
  });

  test("nix-cache-info deleted → cache-info fails; after the printed fix (up --refresh) verify passes", async () => {
    await admin().removeObject(BUCKET, "nix-cache-info");
    const run = await expectFailure("cache-info");
    expect(run.stdout).toContain("answers 404");
    expect(run.stdout).toContain("pulumi up --refresh");

    const up = await t.stack.up({ refresh: true });
    expect(up.summary.result).toBe("succeeded");
    const again = await runVerify();
    expect(again.stdout).toMatch(/^verify: all 12 checks passed$/m);
    expect(again.status).toBe(0);
  });

  test("a narinfo without the active key's signature → narinfo-signatures fails naming it; signed ones pass (--full too)", async () => {
    const builder = s3Client(target(), { accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
    const base =
      "StorePath: /nix/store/0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq-hello-2.12.1\nURL: nar/x.nar.zst\nCompression: zstd\n" +
      "NarHash: sha256:0yzhigwjl6bws649vcs2asa4lbs8hg93hyix187gc7s7a74w5h80\nNarSize: 226488\nReferences: \n";
    const signed = `${base}Sig: ${signDetached(out("secretKey"), fingerprint(parseNarinfo(base)))}\n`;
    const put = (key: string, body: string) =>
      builder.putObject(BUCKET, key, Buffer.from(body), undefined, { "Content-Type": "text/x-nix-narinfo" });
    // Its NAR too, or the closures check fails as well.
    await builder.putObject(BUCKET, "nar/x.nar.zst", Buffer.from("nar"), undefined, { "Content-Type": "application/x-nix-nar" });
    await put("0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq.narinfo", signed);
    try {
      const ok = await runVerify(["--stack", t.stack.name, "--full"]);
      expect(ok.stdout).toMatch(/^PASS +narinfo-signatures +all 1 narinfos: each carries a valid signature by the active key /m);
      expect(ok.status).toBe(0);
      await put("1c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq.narinfo", base);
      const run = await expectFailure("narinfo-signatures");
      expect(run.stdout).toMatch(/all 2 narinfos: 1 lack a valid signature by the active key [^:]+: 1c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq\.narinfo \(no /);
      expect(run.stdout).toContain("npm run resign");
    } finally {
      for (const k of ["0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq.narinfo", "1c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq.narinfo", "nar/x.nar.zst"]) await admin().removeObject(BUCKET, k);
    }
  });

  test("closures: a dependency's narinfo deleted → closures fails naming the dependent and what it lacks; passes once the dependent is gone", async () => {
    // A chain v-0 ← v-1 ← v-2 pushed as Nix pushes (NAR, then narinfo), then signed by the stack's key, so every
    // other check passes and only the closure decides.
    const builder = new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
    const paths = chain("verify-closure", 3);
    const signed = (p: GeneratedPath) => {
      // cacheFill's NarHash is not a real hash; a signature needs one that decodes.
      const text = narinfoText(p).replace(/^NarHash: .*$/m, `NarHash: sha256:${"0".repeat(52)}`);
      return `${text}Sig: ${signDetached(out("secretKey"), fingerprint(parseNarinfo(text)))}\n`;
    };
    try {
      expect(await pushLikeNix(builder, paths)).toBe(3);
      for (const p of paths) await builder.put(narinfoKey(p.hash), signed(p), { contentType: "text/x-nix-narinfo" });
      const whole = await runVerify(["--stack", t.stack.name, "--full"]);
      expect(whole.stdout).toMatch(/^PASS +closures +all 3 narinfos: each has its NAR and the narinfos of its references$/m);
      expect(whole.status).toBe(0);
      // The default samples (3 < 200: all of them, and says so).
      const sampled = await runVerify();
      expect(sampled.stdout).toMatch(/^PASS +closures +all 3 narinfos: /m);

      const [dep, mid, top] = paths;
      await admin().removeObject(BUCKET, narinfoKey(mid.hash));
      const broken = await expectFailure("closures");
      expect(broken.stdout).toContain(
        "all 2 narinfos: 1 lacks its NAR or a reference's narinfo, so a host that substitutes it fails or builds from source:\n",
      );
      expect(broken.stdout).toMatch(new RegExp(`^ {20,}${top.storePath} lacks the narinfo of ${mid.storePath} \\(${narinfoKey(mid.hash)}\\)$`, "m"));
      expect(broken.stdout).not.toContain(`${dep.storePath} lacks`);
      expect(broken.stdout).toContain("fix: run `npm run gc`: it removes broken closures");
      expect(broken.stdout).not.toContain("nix-cache:retention is lifecycle");
      expect([...broken.verdicts].filter(([, v]) => v === "FAIL").map(([k]) => k)).toEqual(["closures"]);

      // A NAR gone is named too (--full: every narinfo).
      await admin().removeObject(BUCKET, dep.narKey);
      const noNar = await runVerify(["--stack", t.stack.name, "--full"]);
      expect(noNar.status).toBe(1);
      expect(noNar.stdout).toContain("all 2 narinfos: 2 lack their NAR or a reference's narinfo");
      expect(noNar.stdout).toMatch(new RegExp(`^ {20,}${dep.storePath} lacks its NAR ${dep.narKey}$`, "m"));
      await builder.put(dep.narKey, Buffer.alloc(dep.narBytes), { contentType: "application/x-nix-nar" });

      // The dependent removed (what npm run gc does): every remaining closure is whole again.
      await admin().removeObject(BUCKET, narinfoKey(top.hash));
      const again = await runVerify(["--stack", t.stack.name, "--full"]);
      expect(again.stdout).toMatch(/^PASS +closures +all 1 narinfos: each has its NAR/m);
      expect(again.stdout).toMatch(/^verify: all 12 checks passed$/m);
      expect(again.status).toBe(0);
      expectNoSecrets(again);
    } finally {
      for (const p of paths) for (const k of [narinfoKey(p.hash), p.narKey]) await admin().removeObject(BUCKET, k);
      builder.close();
    }
  });

  test("retention lifecycle: our rule passes; a whole-bucket rule fails (nix-cache-info); a broken closure's fix names the expiry rule", async () => {
    const builder = new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
    const paths = chain("verify-lifecycle", 2);
    await t.stack.setConfig("nix-cache:retention", { value: "lifecycle" });
    try {
      expect((await t.stack.up()).summary.result).toBe("succeeded");
      const ok = await runVerify();
      expect(ok.stdout).toMatch(/^PASS +lifecycle +retention lifecycle: objects expire after 7 days \(which can break closures\); nix-cache-info never does$/m);
      expect(ok.status).toBe(0);

      await admin().setBucketLifecycle(BUCKET, { Rule: [{ ID: "everything", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 7 } }] });
      await pushLikeNix(builder, paths);
      await admin().removeObject(BUCKET, narinfoKey(paths[0].hash));
      const run = await expectFailure("lifecycle");
      expect(run.stdout).toContain("also expires nix-cache-info");
      expect(run.verdicts.get("closures")).toBe("FAIL");
      expect(run.stdout).toMatch(new RegExp(`^ {20,}${paths[1].storePath} lacks the narinfo of ${paths[0].storePath} `, "m"));
      expect(run.stdout).toContain("nix-cache:retention is lifecycle: its expiry rule deletes each object on its own by age, which is what breaks closures");
    } finally {
      for (const p of paths) for (const k of [narinfoKey(p.hash), p.narKey]) await admin().removeObject(BUCKET, k);
      builder.close();
      await t.stack.setConfig("nix-cache:retention", { value: "gc" });
      expect((await t.stack.up({ refresh: true })).summary.result).toBe("succeeded");
    }
    const back = await runVerify();
    expect(back.stdout).toMatch(/^PASS +lifecycle +retention gc: /m);
    expect(back.stdout).toMatch(/^verify: all 12 checks passed$/m);
  });

  test("an unknown stack exits 2 with how to point verify at the stack", async () => {
    const run = await runVerify(["--stack", "no-such-stack-here"]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("cannot read the stack");
    expect(run.stderr).toContain("--stack NAME");
  });
});

describe("the https certificate check", () => {
  // A CA and two server certificates made with openssl, served by plain TLS servers on 127.0.0.1: one names
  // 127.0.0.1, the other only cache.example.
  let dir: string;
  const servers: https.Server[] = [];
  let goodPort: number;
  let wrongNamePort: number;

  beforeAll(async () => {
    requireTool("openssl", "install it with `apt-get install -y openssl`");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-tls-"));
    const ssl = (args: string[]) => {
      const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
    };
    ssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Verify Test CA"]);
    const serve = async (name: string, san: string): Promise<number> => {
      ssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
      fs.writeFileSync(path.join(dir, `${name}.cnf`), `subjectAltName = ${san}\n`);
      ssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.cnf`]);
      const server = https.createServer(
        { key: fs.readFileSync(path.join(dir, `${name}.key`)), cert: fs.readFileSync(path.join(dir, `${name}.pem`)) },
        (_req, res) => res.end("ok"),
      );
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      return (server.address() as { port: number }).port;
    };
    goodPort = await serve("good", "IP:127.0.0.1");
    wrongNamePort = await serve("wrong-name", "DNS:cache.example");
  });

  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a certificate from a CA the machine does not trust fails, naming the issuer and the fix", async () => {
    const answer = await tlsCheck(`https://127.0.0.1:${goodPort}`, { ca: undefined, source: "Node's built-in CA list" });
    expect(answer.authorized).toBe(false);
    expect(answer.issuer).toContain("CN=Verify Test CA");
    const judged = judgeTls(`https://127.0.0.1:${goodPort}`, answer);
    expect(judged.ok).toBe(false);
    expect(judged.detail).toContain("Node's built-in CA list");
    expect(judged.fix).toContain("set nix-cache:caCertificate to its PEM");
    expect(judged.fix).toContain("CN=Verify Test CA");
  });

  test("the same certificate passes with the CA file trusted", async () => {
    const ca = fs.readFileSync(path.join(dir, "ca.pem"), "utf8");
    const answer = await tlsCheck(`https://127.0.0.1:${goodPort}`, { ca, source: "ca.pem" });
    expect(answer).toMatchObject({ authorized: true, caSource: "ca.pem" });
    expect(judgeTls(`https://127.0.0.1:${goodPort}`, answer).ok).toBe(true);
  });

  test("a trusted certificate for another name fails as a name mismatch", async () => {
    const ca = fs.readFileSync(path.join(dir, "ca.pem"), "utf8");
    const answer = await tlsCheck(`https://127.0.0.1:${wrongNamePort}`, { ca, source: "ca.pem" });
    expect(answer).toMatchObject({ authorized: false, error: "ERR_TLS_CERT_ALTNAME_INVALID" });
    expect(judgeTls(`https://127.0.0.1:${wrongNamePort}`, answer).fix).toContain("does not name 127.0.0.1");
  });
});
