// Drift: someone changes the cache behind Pulumi's back with plain S3/admin requests as root. The drift
// check (`preview --refresh --expect-no-changes`) must fail and name the changed resource, `up --refresh`
// must put it back, and afterwards the check is clean and the cache works. One stack, deployed once; the
// cases run in rounds of cases that touch different resources (ROUNDS).
import * as crypto from "crypto";
import { OutputMap } from "@pulumi/pulumi/automation";
import { canonicalPolicy, anonymousPolicy, builderPolicy, gcPolicy } from "../../lib/minio/policies";
import { lifecycleConfiguration, readExpiryRules } from "../../lib/minio/lifecycle";
import { minioAdmin, s3Client } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { BUCKET, BUILDER, cacheProblems, changesOf, codeOf, driftPreview, rootOf, rootS3, targetOf } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;

beforeAll(async () => {
  // retention=lifecycle, so the expiry rule is there to drift (retention=gc declares none: gcIdentity.test.ts).
  ({ minio, t, outputs } = await deployCache("it-drift", { retention: "lifecycle" }));
});

afterAll(() => removeDeployment(t, minio));

interface DriftCase {
  /** What someone did by hand. */
  what: string;
  /** Does it, as root, behind Pulumi's back. */
  change: () => Promise<void>;
  /** The resources the drift check must name, with the operation that repairs each. */
  repairs: Record<string, string>;
  /** Proof the change took effect on the server before the check runs. */
  changed: () => Promise<boolean>;
}

const s3 = () => rootS3(minio);
const admin = () => ({ t: targetOf(minio), c: rootOf(minio) });
const anonGet = async (key: string) => (await fetch(`${minio.endpoint}/${BUCKET}/${key}`)).status;
const builderS3Works = async () => {
  const b = s3Client(targetOf(minio), {
    accessKey: String(outputs.builderAccessKey.value),
    secretKey: String(outputs.builderSecretKey.value),
  });
  return codeOf(b.putObject(BUCKET, "drift-probe.narinfo", Buffer.from("x")));
};
const policyOf = async () => {
  const { t: tg, c } = admin();
  return canonicalPolicy(await minioAdmin.policyDocument(tg, c, `${BUCKET}-write`));
};
const gcPolicyOf = async () => {
  const { t: tg, c } = admin();
  return canonicalPolicy(await minioAdmin.policyDocument(tg, c, `${BUCKET}-gc`));
};
const gcS3Works = async () => {
  const g = s3Client(targetOf(minio), { accessKey: String(outputs.gcAccessKey.value), secretKey: String(outputs.gcSecretKey.value) });
  return codeOf(g.listObjectsV2Query(BUCKET, "", "", "", 1, ""));
};
const liveRules = async () => readExpiryRules(await s3().getBucketLifecycle(BUCKET).catch(() => null));

const cases: DriftCase[] = [
  {
    what: "nix-cache-info deleted",
    change: () => s3().removeObject(BUCKET, "nix-cache-info"),
    changed: async () => (await anonGet("nix-cache-info")) === 404,
    // Read as empty content (see providers/s3.ts), so it is put back by an update.
    repairs: { "nix-cache-store-nix-cache-info": "update" },
  },
  {
    what: "nix-cache-info edited",
    change: async () => {
      const text = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 99\n";
      await s3().putObject(BUCKET, "nix-cache-info", Buffer.from(text), text.length, { "Content-Type": "text/x-nix-cache-info" });
    },
    changed: async () => (await (await fetch(`${minio.endpoint}/${BUCKET}/nix-cache-info`)).text()).includes("Priority: 99"),
    repairs: { "nix-cache-store-nix-cache-info": "update" },
  },
  {
    what: "anonymous policy removed",
    change: () => s3().setBucketPolicy(BUCKET, ""),
    changed: async () => (await anonGet("nix-cache-info")) === 403,
    repairs: { "nix-cache-anonymous-policy": "create" },
  },
  {
    what: "anonymous policy widened (anonymous PutObject)",
    change: async () => {
      const doc = anonymousPolicy(BUCKET, false);
      doc.Statement.push({ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:PutObject"], Resource: [`arn:aws:s3:::${BUCKET}/*`] });
      await s3().setBucketPolicy(BUCKET, JSON.stringify(doc));
    },
    changed: async () => (await fetch(`${minio.endpoint}/${BUCKET}/anon-probe`, { method: "PUT", body: "x" })).status === 200,
    repairs: { "nix-cache-anonymous-policy": "update" },
  },
  {
    what: "builder's policy edited (DeleteObject added)",
    change: async () => {
      const doc = builderPolicy(BUCKET);
      doc.Statement.push({ Effect: "Allow", Action: ["s3:DeleteObject"], Resource: [`arn:aws:s3:::${BUCKET}/*`] });
      const { t: tg, c } = admin();
      await minioAdmin.putPolicy(tg, c, `${BUCKET}-write`, JSON.stringify(doc));
    },
    changed: async () => (await policyOf()).includes("s3:DeleteObject"),
    repairs: { "nix-cache-builder-policy": "update" },
  },
  {
    what: "builder's policy detached",
    change: async () => {
      const { t: tg, c } = admin();
      await minioAdmin.attachPolicy(tg, c, BUILDER, `${BUCKET}-write`, true);
    },
    changed: async () => (await builderS3Works()) === "AccessDenied",
    repairs: { "nix-cache-builder-attachment": "create" },
  },
  {
    what: "builder user disabled",
    change: async () => {
      const { t: tg, c } = admin();
      await minioAdmin.setUserStatus(tg, c, BUILDER, "disabled");
    },
    changed: async () => (await builderS3Works()) !== "ok",
    repairs: { "nix-cache-builder-user": "update" },
  },
  {
    what: "builder user deleted",
    change: async () => {
      const { t: tg, c } = admin();
      await minioAdmin.removeUser(tg, c, BUILDER);
    },
    changed: async () => (await builderS3Works()) === "InvalidAccessKeyId",
    // The attachment went with the user: both come back.
    repairs: { "nix-cache-builder-user": "create", "nix-cache-builder-attachment": "create" },
  },
  {
    what: "builder password changed",
    change: async () => {
      const { t: tg, c } = admin();
      await minioAdmin.addUser(tg, c, BUILDER, crypto.randomBytes(24).toString("base64url"));
    },
    changed: async () => (await builderS3Works()) === "SignatureDoesNotMatch",
    repairs: { "nix-cache-builder-user": "update" },
  },
  {
    what: "GC's policy widened (PutObject on every cache path)",
    change: async () => {
      const doc = gcPolicy(BUCKET);
      doc.Statement.push({ Effect: "Allow", Action: ["s3:PutObject"], Resource: [`arn:aws:s3:::${BUCKET}/*`] });
      const { t: tg, c } = admin();
      await minioAdmin.putPolicy(tg, c, `${BUCKET}-gc`, JSON.stringify(doc));
    },
    changed: async () => (await gcPolicyOf()) !== canonicalPolicy(gcPolicy(BUCKET)),
    repairs: { "nix-cache-gc-policy": "update" },
  },
  {
    what: "GC user deleted",
    change: async () => {
      const { t: tg, c } = admin();
      await minioAdmin.removeUser(tg, c, String(outputs.gcAccessKey.value));
    },
    changed: async () => (await gcS3Works()) === "InvalidAccessKeyId",
    // The attachment went with the user: both come back.
    repairs: { "nix-cache-gc-user": "create", "nix-cache-gc-attachment": "create" },
  },
  {
    what: "lifecycle rule removed",
    change: () => s3().removeBucketLifecycle(BUCKET),
    changed: async () => (await liveRules()).length === 0,
    repairs: { "nix-cache-expiry-lifecycle": "create" },
  },
  {
    what: "lifecycle rule changed (30 days)",
    change: async () => {
      const [rule] = await liveRules();
      await s3().setBucketLifecycle(BUCKET, lifecycleConfiguration({ ...rule, days: 30 }) as never);
    },
    changed: async () => (await liveRules())[0]?.days === 30,
    repairs: { "nix-cache-expiry-lifecycle": "update" },
  },
];

test("the drift check is clean right after up", async () => {
  const check = await driftPreview(t.stack);
  expect(check.failed).toBe(false);
  expect(check.changes).toEqual({});
  expect(await cacheProblems(minio, outputs)).toEqual([]);
});

/**
 * The cases in rounds: the cases of a round touch different resources, so one round runs one drift check, one
 * `up --refresh` and one clean check for all of them (three engine runs instead of three per case). Every case
 * keeps its own assertions below; the round's own test proves the check and the repair named nothing else.
 */
const ROUNDS: string[][] = [
  ["nix-cache-info deleted", "anonymous policy removed", "builder's policy edited (DeleteObject added)", "builder user disabled", "GC's policy widened (PutObject on every cache path)", "lifecycle rule removed"],
  ["nix-cache-info edited", "anonymous policy widened (anonymous PutObject)", "builder's policy detached", "GC user deleted", "lifecycle rule changed (30 days)"],
  ["builder user deleted"],
  // Alone: its probe (SignatureDoesNotMatch) needs the policy attached, which the round above detaches.
  ["builder password changed"],
];

test("the rounds hold every case once, and no two cases of a round repair the same resource", () => {
  expect(ROUNDS.flat().sort()).toEqual(cases.map((c) => c.what).sort());
  for (const round of ROUNDS) {
    const resources = round.flatMap((what) => Object.keys(cases.find((c) => c.what === what)?.repairs ?? {}));
    expect(new Set(resources).size).toBe(resources.length);
  }
});

describe.each(ROUNDS.map((round, i) => [i + 1, round] as const))("drift round %i", (_i, round) => {
  const roundCases = round.map((what) => cases.find((c) => c.what === what) as DriftCase);
  const changed: Record<string, boolean> = {};
  let check: Awaited<ReturnType<typeof driftPreview>>;
  let repaired: Record<string, string>;
  let upResult: string;
  let after: Awaited<ReturnType<typeof driftPreview>>;

  beforeAll(async () => {
    // Each change is made and seen to take effect before the next (a later change may hide an earlier probe).
    for (const c of roundCases) {
      await c.change();
      changed[c.what] = await c.changed();
    }
    check = await driftPreview(t.stack);
    const events: Parameters<typeof changesOf>[0] = [];
    upResult = (await t.stack.up({ refresh: true, onEvent: (e) => events.push(e) })).summary.result;
    repaired = changesOf(events);
    after = await driftPreview(t.stack);
  });

  test("the drift check and the repair name exactly this round's resources; afterwards the check is clean and the cache works", async () => {
    const expected = Object.assign({}, ...roundCases.map((c) => c.repairs)) as Record<string, string>;
    expect(check.failed).toBe(true);
    expect(check.text).toContain("no changes were expected for preview but changes were proposed");
    expect(check.changes).toEqual(expected);
    expect(upResult).toBe("succeeded");
    expect(repaired).toEqual(expected);
    expect(after.failed).toBe(false);
    expect(after.changes).toEqual({});
    expect(await cacheProblems(minio, outputs)).toEqual([]);
    expect((await liveRules())[0]?.days).toBe(7);
    expect(await policyOf()).toBe(canonicalPolicy(builderPolicy(BUCKET)));
    expect(await gcPolicyOf()).toBe(canonicalPolicy(gcPolicy(BUCKET)));
    expect(await gcS3Works()).toBe("ok");
  });

  test.each(round)("%s: the drift check fails naming it, up --refresh restores it", (what) => {
    const c = roundCases.find((x) => x.what === what) as DriftCase;
    expect(changed[what]).toBe(true);
    // The check names each changed resource with its repair, in the CLI output and in its events.
    for (const [name, op] of Object.entries(c.repairs)) {
      expect([name, check.changes[name]]).toEqual([name, op]);
      expect(check.text).toMatch(new RegExp(`^ [+~-]{1,2}\\s+nix-cache:index:\\w+ ${name} ${op}`, "m"));
      expect([name, repaired[name]]).toEqual([name, op]);
    }
  });
});

test("the cron form with --run-program (current admin credentials) finds drift and is clean after the repair", async () => {
  await s3().removeObject(BUCKET, "nix-cache-info");
  const failed = await t.stack.preview({ refresh: true, runProgram: true, expectNoChanges: true }).then(
    () => "",
    (err: Error) => err.message,
  );
  expect(failed).toMatch(/^ ~\s+nix-cache:index:MinioObject nix-cache-store-nix-cache-info update/m);
  expect(failed).toContain("no changes were expected for preview but changes were proposed");
  await t.stack.up({ refresh: true, runProgram: true });
  const clean = await t.stack.preview({ refresh: true, runProgram: true, expectNoChanges: true });
  expect(clean.changeSummary.same).toBeGreaterThan(0);
  expect(await cacheProblems(minio, outputs)).toEqual([]);
});
