// One GC run over an in-memory bucket (lib/gc/run.ts): the lease, the re-check before deleting, a GC killed
// half-way, and pushes that race the sweep. The real-MinIO versions are in tests/integration/gc.test.ts.
import { LEASE_KEY } from "../../lib/gc/plan";
import { acquireLease, checkClosures, GcOptions, LeaseHeld, runGc } from "../../lib/gc/run";
import { CacheBuilder, MemoryBucket } from "./support/gcCache";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const holder = { host: "builder", pid: 4242, command: "test" };

const violations = (bucket: MemoryBucket) => bucket.violations();

const options = (extra: Partial<GcOptions> = {}): GcOptions => ({ retainMs: 7 * DAY, graceMs: 6 * HOUR, holder, settleMs: 0, ...extra });

let bucket: MemoryBucket;
let c: CacheBuilder;
beforeEach(() => {
  bucket = new MemoryBucket();
  c = new CacheBuilder(bucket);
  bucket.write("nix-cache-info", "StoreDir: /nix/store\n");
  c.push({ name: "old-lib" });
  c.push({ name: "old-app", refs: ["old-lib"] });
  bucket.advance(20 * DAY);
  c.push({ name: "lib" });
  c.push({ name: "app", refs: ["lib", "old-lib"] });
  bucket.advance(DAY);
});

test("collects what is old and unreachable, keeps the rest, releases the lease", async () => {
  const r = await runGc(bucket, options());
  expect(bucket.keys()).toEqual(
    ["nix-cache-info", c.key("lib"), c.key("app"), c.key("old-lib"), "nar/lib.nar.xz", "nar/app.nar.xz", "nar/old-lib.nar.xz"].sort(),
  );
  expect(r.deleted).toMatchObject({ narinfos: 1, nars: 1 });
  expect(r.kept.narinfos).toBe(3);
  expect(bucket.objects.has(LEASE_KEY)).toBe(false);
});

test("a dry run deletes nothing, takes no lease, and reports the same plan", async () => {
  const before = bucket.keys();
  const dry = await runGc(bucket, options({ dryRun: true }));
  expect(bucket.keys()).toEqual(before);
  expect(bucket.deletes).toEqual([]);
  const real = await runGc(bucket, options());
  expect(real.deleted).toEqual(dry.deleted);
});

describe("the lease: one GC at a time", () => {
  test("a second GC is refused while the first holds it, and nothing is deleted", async () => {
    const { lease } = await acquireLease(bucket, { holder: { ...holder, host: "other" } });
    await expect(runGc(bucket, options())).rejects.toThrow(LeaseHeld);
    await expect(runGc(bucket, options())).rejects.toThrow(/another GC is running \(test on other, pid 4242\)/);
    expect(bucket.deletes).toEqual([]);
    await lease.release();
    await runGc(bucket, options());
    expect(bucket.deletes.length).toBeGreaterThan(0);
  });

  test("an expired lease is taken over, with a note", async () => {
    await acquireLease(bucket, { holder: { ...holder, host: "other" }, leaseTtlMs: 60_000 });
    bucket.advance(61_000);
    const r = await runGc(bucket, options());
    expect(r.tookOverLease).toMatch(/took over the lease of test \(it expired at/);
  });

  test("a lease left by a dead process on this host is taken over at once", async () => {
    await acquireLease(bucket, { holder: { ...holder, pid: 1 } });
    const r = await runGc(bucket, options({ isLocalProcessAlive: (pid) => pid !== 1 }));
    expect(r.tookOverLease).toMatch(/its process 1 on builder is gone/);
  });

  test("two takeovers of one expired lease: only one wins", async () => {
    await acquireLease(bucket, { holder, leaseTtlMs: 1000 });
    bucket.advance(2000);
    const results = await Promise.allSettled([acquireLease(bucket, { holder: { ...holder, pid: 1 } }), acquireLease(bucket, { holder: { ...holder, pid: 2 } })]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(1);
  });
});

test("a GC killed half-way leaves the invariant whole, and the next run finishes", async () => {
  for (let i = 0; i < 10; i++) c.push({ name: `dead${i}`, refs: i > 0 ? [`dead${i - 1}`] : [] });
  bucket.advance(30 * DAY);
  let left = 4;
  bucket.beforeDelete = () => {
    if (left-- === 0) throw new Error("killed");
  };
  await expect(runGc(bucket, options({ isLocalProcessAlive: () => false }))).resolves.toMatchObject({ failed: [{ error: "killed" }] });
  expect(violations(bucket)).toEqual([]);
  expect(bucket.objects.has(c.key("dead0"))).toBe(true);
  bucket.beforeDelete = undefined;
  const r = await runGc(bucket, options());
  expect(r.failed).toEqual([]);
  expect(bucket.keys().filter((k) => k.endsWith(".narinfo"))).toEqual([]);
  expect(bucket.keys()).toEqual(["nix-cache-info"]);
});

test("a push after the mark that references a dead path keeps it (re-check before deleting)", async () => {
  bucket.advance(30 * DAY); // everything is old now
  const r = await runGc(
    bucket,
    options({
      afterMark: async () => {
        // Nix found old-app present (HEAD) and did not upload it again; it writes only the new narinfo.
        c.push({ name: "new", refs: ["old-app"] });
      },
    }),
  );
  expect(bucket.objects.has(c.key("old-app"))).toBe(true);
  expect(bucket.objects.has(c.key("old-lib"))).toBe(true);
  expect(violations(bucket)).toEqual([]);
  expect(r.raced).toEqual([]);
});

test("a push during the sweep that references a path just deleted is removed in the last look", async () => {
  bucket.advance(30 * DAY);
  let pushed = false;
  bucket.beforeDelete = (key) => {
    // The pusher checked old-lib a moment before the GC deletes it, and lands its narinfo right after.
    if (key === c.key("old-lib") && !pushed) {
      pushed = true;
      queueMicrotask(() => c.push({ name: "late", refs: ["old-lib"] }));
    }
  };
  const r = await runGc(bucket, options());
  expect(pushed).toBe(true);
  expect(r.raced).toEqual([{ key: c.key("late"), missing: [c.key("old-lib")] }]);
  expect(violations(bucket)).toEqual([]);
});

describe("checkClosures (verify's invariant check)", () => {
  test("names each narinfo missing its NAR or a reference, on all or a sample", async () => {
    bucket.objects.delete(c.key("old-lib"));
    bucket.objects.delete("nar/lib.nar.xz");
    const all = await checkClosures(bucket);
    expect(all.narinfos).toBe(3);
    expect(all.checked).toBe(3);
    expect(all.broken).toEqual([
      { key: c.key("app"), storePath: c.storePath("app"), missing: [c.key("old-lib")] },
      { key: c.key("lib"), storePath: c.storePath("lib"), missing: ["nar/lib.nar.xz"] },
      { key: c.key("old-app"), storePath: c.storePath("old-app"), missing: [c.key("old-lib")] },
    ].sort((a, b) => a.key.localeCompare(b.key)));
    const sample = await checkClosures(bucket, { pick: (hashes) => hashes.slice(0, 1) });
    expect(sample.checked).toBe(1);
    expect(sample.broken.length).toBeLessThanOrEqual(1);
  });
  test("a whole cache has none", async () => {
    expect((await checkClosures(bucket)).broken).toEqual([]);
  });
});

test("a long run renews its lease (concurrent NAR deletes share one renewal) and keeps it to the end", async () => {
  for (let i = 0; i < 30; i++) c.push({ name: `slow${i}` });
  bucket.advance(30 * DAY);
  const leasePuts: string[] = [];
  const put = bucket.put.bind(bucket);
  bucket.put = async (key, body, opts) => {
    const r = await put(key, body, opts);
    if (key === LEASE_KEY) leasePuts.push(r.outcome);
    return r;
  };
  const deleted: string[] = [];
  const r = await runGc(bucket, options({ leaseTtlMs: 60, deleteDelayMs: 5, onDeleted: (s) => deleted.push(s.key) }));
  expect(r.failed).toEqual([]);
  expect(leasePuts.length).toBeGreaterThan(3);
  expect(leasePuts.every((o) => o === "written")).toBe(true);
  expect(deleted).toContain(c.key("slow0"));
  expect(deleted.length).toBe(r.deleted.narinfos + r.deleted.nars + r.deleted.listings + r.deleted.logs);
});
