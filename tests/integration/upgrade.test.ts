// A stack deployed by an earlier version of this project, then previewed by this checkout: nothing changes.
// The earlier version is the program of the last commit before lib/ was grouped by domain and the S3, shell and
// bundle work of issue 23 (0c7c7fd), kept as a fixture so the test needs no git history:
//   git archive --format=tar 0c7c7fd index.ts Pulumi.yaml package.json tsconfig.json components providers lib \
//     | gzip -9 -n > tests/fixtures/earlier-0c7c7fd.tar.gz
// It is deployed from its own directory; this checkout then runs `pulumi preview --refresh` on the same stack, as a
// user who pulls the new version does. Module moves change the providers' serialized code, never a resource's
// name, type or inputs; the one thing added since is the destroy guard (issue 20), made by the next up.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { cacheProblems, driftPreview } from "./helpers";

/** The program of the last commit with the flat lib/ layout (before issue 23). */
const EARLIER_PROGRAM = path.join(__dirname, "..", "fixtures", "earlier-0c7c7fd.tar.gz");

/**
 * A bucket of its own and unset user names: the earlier version named the users nixbuilder and nixgc, this one
 * derives new stacks' names from the bucket; an existing stack keeps the names it has (no rename on upgrade).
 */
const UPGRADE_CONFIG = { bucket: "team-cache" };

let minio: MinioServer;
let t: TestStack;
let earlierDir: string;
let earlier: Stack;

beforeAll(async () => {
  earlierDir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-earlier-"));
  execFileSync("tar", ["-xzf", EARLIER_PROGRAM, "-C", earlierDir]);
  // The earlier version's npm packages are a subset of this one's (same @pulumi/pulumi and minio).
  fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(earlierDir, "node_modules"));
  minio = await startMinio();
  t = await createTestStack("it-upgrade", minioConfig(minio, UPGRADE_CONFIG));
  earlier = await LocalWorkspace.selectStack({ stackName: t.stack.name, workDir: earlierDir }, { envVars: t.env });
  await earlier.setAllConfig(minioConfig(minio, UPGRADE_CONFIG));
});

afterAll(async () => {
  await t?.remove();
  await minio?.destroy();
  fs.rmSync(earlierDir, { recursive: true, force: true });
});

test("deployed by the earlier version, then this one: only the destroy guard is added; nothing else changes, and the cache keeps working", async () => {
  const up = await earlier.up();
  expect(up.summary.result).toBe("succeeded");
  const created = up.summary.resourceChanges?.create ?? 0;
  expect(created).toBeGreaterThan(15);
  const outputs = await earlier.outputs();

  // What this version adds to an existing stack: the destroy guard (lib/minio/destroy.ts), and nothing else.
  const check = await driftPreview(t.stack);
  expect(check.changes).toEqual({ "nix-cache-destroy-guard": "create" });
  expect((await t.stack.up()).summary.result).toBe("succeeded");
  const after = await driftPreview(t.stack);
  expect(after.changes).toEqual({});
  expect(after.failed).toBe(false);
  // The same outputs, secrets included (the signing key and passwords stay), and the new `access`: public.
  const now = await t.stack.outputs();
  expect(Object.keys(now).sort()).toEqual([...Object.keys(outputs), "access"].sort());
  expect(now.access.value).toBe("public");
  for (const name of Object.keys(outputs)) expect([name, now[name].value]).toEqual([name, outputs[name].value]);
  expect(await cacheProblems(minio, now)).toEqual([]);
  expect([now.builderAccessKey.value, now.gcAccessKey.value]).toEqual(["nixbuilder", "nixgc"]);
});
