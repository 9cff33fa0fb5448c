// `npm run gc` as an operator runs it (a child process reading the stack through the pulumi CLI, working as the
// stack's least-privilege GC identity) against a real MinIO and a real deployed stack, in the user's order: a
// cache with closures of various ages, pins and refreshed paths; a dry run; the GC; then pushes racing the GC,
// a GC killed half-way, two GCs at once; the stack stays without drift. After every run, every narinfo present
// has its NAR and its references' narinfos (checked with real requests, lib/gc/run.ts checkClosures). One
// deployed stack; the cases run in order, each on what the previous left (every case keeps the invariant). The
// first GC runs are the runbook's, as written: docs/gc.sh (shown verbatim by docs/operations.md,
// tests/unit/runbookDocs.test.ts) run by bash in the checkout on the selected stack, with the defaults it names.
import { narinfoKey } from "../../lib/gc/plan";
import { checkClosures } from "../../lib/gc/run";
import { S3Rest } from "../../lib/s3/client";
import { chain, GeneratedPath, generatedPath, pushLikeNix } from "../../harness/cacheFill";
import { DeployedCache, deployCache, removeDeployment } from "../../harness/stack";
import { keptSince, startGcCli } from "../support/gcCli";
import { continueProcess, stopProcess } from "../support/processState";
import { readerOf, RunbookRun, succeeded } from "../support/runbook";
import { BUCKET, driftPreview } from "./helpers";

let d: DeployedCache;
/** The builder's identity (what pushes), and the MinIO root (what the test looks with). */
let builder: S3Rest;
let root: S3Rest;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const startGc = (args: string[], env?: Record<string, string>) => startGcCli(d.t, args, env);
const runGc = (args: string[], env?: Record<string, string>) => startGc(args, env).done;

async function present(key: string): Promise<boolean> {
  return (await root.head(key)) !== undefined;
}

async function expectWhole(): Promise<void> {
  const check = await checkClosures(root);
  expect(check.broken).toEqual([]);
}

const keysOf = (paths: GeneratedPath[]) => paths.flatMap((p) => [narinfoKey(p.hash), p.narKey]);

beforeAll(async () => {
  d = await deployCache("gc");
  const loc = { endpoint: d.minio.endpoint, region: "us-east-1", bucket: BUCKET };
  builder = new S3Rest({ ...loc, accessKey: String(d.outputs.builderAccessKey.value), secretKey: String(d.outputs.builderSecretKey.value) });
  root = new S3Rest({ ...loc, accessKey: d.minio.rootUser, secretKey: d.minio.rootPassword });
}, 600_000);

afterAll(async () => {
  builder?.close();
  root?.close();
  await removeDeployment(d?.t, d?.minio);
});

describe("a cache with closures of various ages", () => {
  const old = chain("old", 3);
  const shared = chain("shared", 2);
  const pinned = chain("pinned", 3);
  const refreshed = chain("refreshed", 2);
  const recent = [generatedPath("recent", ["recent", "shared-1"])];
  /** A closure whose NARs an expiry rule took while their narinfos stayed (docs/operations.md, "Retention"). */
  const expired = chain("expired", 2);
  let oldPushedAt = 0;
  /** Keep what was pushed or refreshed after the old closures (a moment after the last of them, before the rest). */
  const keptSinceOld = () => keptSince(oldPushedAt + 500);
  let runbook: RunbookRun;

  beforeAll(async () => {
    for (const closure of [old, shared, pinned, refreshed, expired]) await pushLikeNix(builder, closure);
    for (const p of expired) await root.delete(p.narKey);
    oldPushedAt = Date.now();
    // The runbook through npm, as operators run it (the other runs of this file start scripts/gc.ts directly):
    // it pins the laptop's closure for the cases below, and its GC removes the broken closure.
    const reader = readerOf(d.t);
    try {
      runbook = await reader.run("gc.sh", [pinned[2].storePath]);
    } finally {
      reader.remove();
    }
    // What follows is younger than keptSinceOld(): the GC runs keep it by time, whenever they start (no guessed margin).
    await sleep(1_500);
    // A recent build whose closure includes shared-1, already cached: Nix skips it, so its age stays old.
    expect(await pushLikeNix(builder, [...shared, ...recent])).toBe(1);
    // The builder's drain found `refreshed` already cached and refreshed it: NARs first, dependencies first.
    for (const p of refreshed) {
      expect(await builder.touch(p.narKey, "application/x-nix-nar")).toBe("touched");
      expect(await builder.touch(narinfoKey(p.hash), "text/x-nix-narinfo")).toBe("touched");
    }
  }, 300_000);

  test("the runbook as written (docs/gc.sh): the pin is made and listed; the dry run names what the GC then deletes, the broken closure; all else stays whole", async () => {
    const output = succeeded("gc.sh", runbook);
    expect(output).toContain(`gc: pinned ${pinned[2].storePath} as laptop`);
    expect(output).toMatch(new RegExp(`^laptop\t${pinned[2].storePath}\ngc: 1 pin$`, "m"));
    // The defaults the runbook's section names: 7 days (the stack's retainDays), a grace period of 6 h.
    expect(output).toMatch(/^gc: keeping closures pushed or refreshed in the last 7d, pinned ones, and anything younger than 6h; dry run: nothing is deleted$/m);
    const dry = /^gc \(dry run\): would keep (\d+) paths and (\d+) NARs \((.*)\), would delete (.*)$/m.exec(output);
    const real = /^gc: kept (\d+) paths and (\d+) NARs \((.*)\), deleted (.*)$/m.exec(output);
    // The dry run deleted nothing: the GC after it finds, and deletes, all it named.
    expect([...(dry?.slice(1, 4) ?? []), dry?.[4].replace("would be removed", "removed")]).toEqual(real?.slice(1));
    expect(real?.[4]).toMatch(/^2 paths and 0 NARs \(.*\), 2 broken closures found \(2 removed\)$/);
    const named = (verb: string) => [...output.matchAll(new RegExp(`^broken closure: (\\S+) .*: ${verb} \\(push it again to restore it\\)$`, "gm"))].map((m) => m[1]).sort();
    expect(named("would remove")).toEqual(expired.map((p) => p.storePath).sort());
    expect(named("removed")).toEqual(named("would remove"));
    for (const p of expired) expect(await present(narinfoKey(p.hash))).toBe(false);
    for (const key of keysOf([...old, ...shared, ...pinned, ...refreshed])) expect(await present(key)).toBe(true);
    expect(await present("gc/lease")).toBe(false);
    await expectWhole();
  });

  test("a path not in the cache cannot be pinned (exit 1)", async () => {
    const refused = await runGc(["pin", "ghost", generatedPath("never-pushed").storePath]);
    expect(refused.stdout).toMatch(/gc: refused: .* is not in the cache/);
    expect(refused.status).toBe(1);
  });

  test("a dry run names what would go and deletes nothing", async () => {
    const before = await checkClosures(root);
    const r = await runGc(["--dry-run", ...keptSinceOld()]);
    expect(r.stdout).toMatch(/^gc \(dry run\): would keep 8 paths and 8 NARs \(.*\), would delete 3 paths and 3 NARs \(.*\)$/m);
    expect(r.status).toBe(0);
    expect((await checkClosures(root)).narinfos).toBe(before.narinfos);
    for (const key of keysOf(old)) expect(await present(key)).toBe(true);
  });

  test("gc deletes the old closure whole and keeps recent, pinned and refreshed closures whole", async () => {
    const r = await runGc(keptSinceOld());
    expect(r.stdout).toMatch(/^gc: kept 8 paths and 8 NARs \(.*\), deleted 3 paths and 3 NARs \(.*\)$/m);
    expect(r.stdout).toContain(`gc: stack ${d.t.stack.name}, bucket ${BUCKET} at http://127.0.0.1:`);
    expect(r.status).toBe(0);
    for (const key of keysOf(old)) expect(await present(key)).toBe(false);
    for (const key of keysOf([...shared, ...pinned, ...refreshed, ...recent])) expect(await present(key)).toBe(true);
    expect(await present("nix-cache-info")).toBe(true);
    expect(await present("gc/lease")).toBe(false);
    await expectWhole();
  });

  test("a second run finds nothing more to delete", async () => {
    const r = await runGc(keptSinceOld());
    expect(r.stdout).toMatch(/deleted 0 paths and 0 NARs/);
    expect(r.status).toBe(0);
  });
});

describe("concurrency", () => {
  /** Pushes like Nix: checks which paths of the closure the cache has, takes `uploadMs` (NAR uploads), then uploads the rest. */
  async function racingPush(closure: GeneratedPath[], uploadMs: number): Promise<void> {
    const have = new Set<string>();
    for (const p of closure) if (await builder.head(narinfoKey(p.hash))) have.add(p.name);
    await sleep(uploadMs);
    await pushLikeNix(builder, closure.filter((p) => !have.has(p.name)), { skipExisting: false });
  }

  test("pushes racing the GC never leave a narinfo with a missing reference", async () => {
    for (let round = 0; round < 5; round++) {
      const dead = chain(`race${round}`, 6);
      await pushLikeNix(builder, dead);
      const gc = startGc(["--retain-days", "0", "--grace", "0s"], { NIX_CACHE_GC_TEST_DELETE_DELAY_MS: "150" });
      // Land the dependent's narinfo at a different moment of the GC each round: counted from when the GC has
      // started (its lease is there), not from a guess of how long its start takes.
      for (let i = 0; i < 600 && !(await present("gc/lease")); i++) await sleep(50);
      await sleep(round * 400);
      await racingPush([...dead, generatedPath(`race${round}-top`, [`race${round}-5`])], 400);
      const r = await gc.done;
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.status).toBe(0);
      await expectWhole();
    }
  }, 300_000);

  test("a GC killed half-way leaves the closures whole; the next run takes over its lease and finishes", async () => {
    await runGc(["--retain-days", "0", "--grace", "0s"]);
    const dead = chain("killed", 40);
    await pushLikeNix(builder, dead);
    const gc = startGc(["--retain-days", "0", "--grace", "0s"], { NIX_CACHE_GC_TEST_DELETE_DELAY_MS: "200" });
    // Wait until it has deleted a few narinfos, then kill it (and npm) at once.
    for (let i = 0; i < 300 && (await present(narinfoKey(dead[39].hash))); i++) await sleep(100);
    await sleep(1000);
    process.kill(-(gc.child.pid as number), "SIGKILL");
    await gc.done;
    expect(await present("gc/lease")).toBe(true);
    expect(await present(narinfoKey(dead[39].hash))).toBe(false);
    expect(await present(narinfoKey(dead[0].hash))).toBe(true);
    await expectWhole();
    const next = await runGc(["--retain-days", "0", "--grace", "0s"]);
    expect(next.stdout).toMatch(/took over the lease of npm run gc \(its process \d+ on .* is gone\)/);
    expect(next.status).toBe(0);
    for (const key of keysOf(dead)) expect(await present(key)).toBe(false);
    await expectWhole();
  }, 300_000);

  test("two GCs at once: the second refuses (exit 1) and deletes nothing; the first finishes", async () => {
    const dead = chain("twice", 20);
    await pushLikeNix(builder, dead);
    const first = startGc(["--retain-days", "0", "--grace", "0s"], { NIX_CACHE_GC_TEST_DELETE_DELAY_MS: "300" });
    for (let i = 0; i < 300 && !(await present("gc/lease")); i++) await sleep(100);
    // The first GC holds the lease; stopped, it keeps holding it (its process is alive) however long the second
    // takes to start, so the second meets it whatever the machine's load.
    await stopProcess(first.child.pid as number);
    let second: Awaited<ReturnType<typeof runGc>>;
    try {
      second = await runGc(["--retain-days", "0", "--grace", "0s"]);
    } finally {
      await continueProcess(first.child.pid as number);
    }
    expect(second.stdout).toMatch(new RegExp(`gc: refused: another GC is running \\(npm run gc on .*, pid ${first.child.pid}\\)`));
    expect(second.status).toBe(1);
    const r = await first.done;
    expect(r.status).toBe(0);
    for (const key of keysOf(dead)) expect(await present(key)).toBe(false);
    await expectWhole();
  }, 300_000);
});

test("the pinned closure outlives every GC above; after the runs the stack shows no drift", async () => {
  expect(await present(narinfoKey(generatedPath("pinned-0").hash))).toBe(true);
  expect(await present("nix-cache-info")).toBe(true);
  const preview = await driftPreview(d.t.stack);
  expect(preview.changes).toEqual({});
}, 300_000);
