// Stacks deployed by earlier versions of this project, then previewed and updated by this checkout, as a user who
// pulls the new version does. Both earlier versions served their resources with dynamic providers (each resource
// carried its serialized provider code); this one serves them with the provider plugin (bin/). The move keeps
// every resource: same name, same id, no delete, no replacement; each resource updates once (its state drops the
// dynamic-provider code), the signing key and the passwords stay, and the state shrinks to its own props.
// The earlier programs are fixtures, so the test needs no git history:
//   git archive --format=tar COMMIT index.ts Pulumi.yaml package.json tsconfig.json components providers lib \
//     | gzip -9 -n > tests/fixtures/NAME-COMMIT.tar.gz
// Each is deployed from its own directory (harness/stack.ts programFromArchive); this checkout then runs
// `pulumi preview --refresh` and `up` on the same stack.
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio } from "../../harness/minio";
import { CacheConfig, createTestStack, minioConfig, programFromArchive, TestStack } from "../../harness/stack";
import { cacheProblems, driftPreview } from "./helpers";

interface Earlier {
  /** The fixture: the earlier program's files. */
  fixture: string;
  /** What the earlier version was. */
  what: string;
  /** Its own bucket, so both stacks share one MinIO. */
  config: CacheConfig;
  /** What this version adds to such a stack (name → "create"). */
  added: Record<string, string>;
  /** Outputs this version adds. */
  newOutputs: string[];
  /** The builder's and the GC's user names the earlier version gave. */
  users: [string, string];
}

const EARLIER: Earlier[] = [
  {
    fixture: "earlier-0c7c7fd.tar.gz",
    what: "the flat lib/ layout, before issue 23",
    // Unset user names: that version named them nixbuilder and nixgc for any bucket; a stack keeps its names.
    config: { bucket: "team-cache" },
    // The destroy guard (issue 20) and the `access` output (issue 21) came later.
    added: { "nix-cache-destroy-guard": "create" },
    newOutputs: ["access"],
    users: ["nixbuilder", "nixgc"],
  },
  {
    fixture: "dynamic-eface94.tar.gz",
    what: "the last dynamic providers, before the provider plugin (issue 22)",
    config: { bucket: "home-cache" },
    added: {},
    newOutputs: [],
    users: ["home-cache-builder", "home-cache-gc"],
  },
];

interface StateResource {
  urn: string;
  type: string;
  id?: string;
  custom?: boolean;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

async function stateOf(t: TestStack): Promise<{ resources: StateResource[]; bytes: number }> {
  const exported = await t.stack.exportStack();
  const resources = ((exported.deployment as { resources?: StateResource[] }).resources ?? []).filter((r) => r.custom);
  return { resources, bytes: JSON.stringify(exported).length };
}

/** name → id of the cache's resources (not providers): equal ids mean nothing was replaced. */
const idsByName = (resources: StateResource[]) =>
  Object.fromEntries(resources.filter((r) => !r.type.startsWith("pulumi:providers:")).map((r) => [r.urn.split("::").pop(), r.id]));

let minio: MinioServer;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  minio = await startMinio();
});

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await minio?.destroy();
});

describe.each(EARLIER)("a stack deployed by $what", (earlier) => {
  let t: TestStack;
  let outputs: OutputMap;
  let before: { resources: StateResource[]; bytes: number };

  beforeAll(async () => {
    t = await createTestStack("it-upgrade", minioConfig(minio, earlier.config));
    cleanups.push(() => t.remove());
    const earlierProgram = await programFromArchive(t, path.join(__dirname, "..", "fixtures", earlier.fixture), minioConfig(minio, earlier.config));
    cleanups.push(async () => earlierProgram.remove());
    const old = earlierProgram.stack;
    const up = await old.up();
    if (up.summary.result !== "succeeded") throw new Error(`the earlier version's up ended ${up.summary.result}`);
    outputs = await old.outputs();
    before = await stateOf(t);
  });

  test("deployed with dynamic providers: every resource carries its serialized provider code", () => {
    const dynamic = before.resources.filter((r) => r.type.startsWith("pulumi-nodejs:dynamic:"));
    expect(dynamic.length).toBeGreaterThanOrEqual(14);
    expect(dynamic.every((r) => typeof r.outputs?.__provider === "string")).toBe(true);
  });

  test("this version's preview: updates (the move to the plugin) and what it adds; nothing deleted or replaced", async () => {
    const check = await driftPreview(t.stack);
    const notUpdates = Object.fromEntries(Object.entries(check.changes).filter(([, op]) => op !== "update"));
    expect(notUpdates).toEqual(earlier.added);
    expect(Object.values(check.changes).filter((op) => op === "update").length).toBeGreaterThan(0);
  });

  test("this version's up keeps every resource (same ids), the keys, the passwords and a working cache", async () => {
    const up = await t.stack.up();
    expect(up.summary.result).toBe("succeeded");
    const after = await stateOf(t);
    const ids = idsByName(after.resources);
    for (const [name, id] of Object.entries(idsByName(before.resources))) expect([name, ids[name]]).toEqual([name, id]);
    // The same outputs, secrets included (the signing key and passwords stay).
    const now = await t.stack.outputs();
    expect(Object.keys(now).sort()).toEqual([...Object.keys(outputs), ...earlier.newOutputs].sort());
    for (const name of Object.keys(outputs)) expect([name, now[name].value]).toEqual([name, outputs[name].value]);
    expect(await cacheProblems(minio, now)).toEqual([]);
    expect([now.builderAccessKey.value, now.gcAccessKey.value]).toEqual(earlier.users);
  });

  test("afterwards: the state holds only the resources' own props (no provider code) and previews clean", async () => {
    const after = await stateOf(t);
    const cache = after.resources.filter((r) => !r.type.startsWith("pulumi:providers:"));
    expect(cache.every((r) => r.type.startsWith("nix-cache:index:"))).toBe(true);
    expect(JSON.stringify(after.resources).includes("__provider")).toBe(false);
    expect(after.bytes).toBeLessThan(100_000);
    expect(after.bytes * 5).toBeLessThan(before.bytes);
    const check = await driftPreview(t.stack);
    expect(check.changes).toEqual({});
    expect(check.failed).toBe(false);
  });
});
