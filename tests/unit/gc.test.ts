// The GC's decisions (lib/gc/plan.ts): key kinds, narinfo facts, roots and marking, the delete order, and the
// invariant after every single delete of a plan, on hand-made and generated caches.
import { classifyKey, dependentsFirst, formatDuration, isUnreadable, narinfoKey, NarinfoFacts, narSweep, parseDuration, planGc, readNarinfoFacts, storePathHash, SweepStep } from "../../lib/gc/plan";
import { CacheBuilder, hashOf, MemoryBucket, prng } from "./support/gcCache";

const DAY = 86_400_000;
const HOUR = 3_600_000;

function plan(bucket: MemoryBucket, opts: { retainMs?: number; graceMs?: number; pins?: { name: string; storePath: string }[]; repairBroken?: boolean } = {}) {
  const { inventory, facts } = bucket.snapshot();
  const p = planGc(inventory, facts, {
    now: bucket.now,
    retainMs: opts.retainMs ?? 7 * DAY,
    graceMs: opts.graceMs ?? 6 * HOUR,
    pins: opts.pins ?? [],
    repairBroken: opts.repairBroken,
  });
  const doomed = new Set(p.narinfoSteps.filter((s) => s.kind === "narinfo").map((s) => s.key.slice(0, 32)));
  const remaining = [...inventory.narinfos.keys()].filter((h) => !doomed.has(h));
  const nars = narSweep(inventory, facts, remaining, new Date(bucket.now.getTime() - (opts.graceMs ?? 6 * HOUR)));
  return { plan: p, nars, steps: [...p.narinfoSteps, ...nars], inventory, facts };
}

const violations = (bucket: MemoryBucket) => bucket.violations();

const deletedKeys = (steps: SweepStep[]) => steps.map((s) => s.key);

describe("classifyKey", () => {
  test.each([
    ["nix-cache-info", "cacheInfo"],
    ["gc/lease", "bookkeeping"],
    ["gc/pins/laptop", "bookkeeping"],
    [`${hashOf("a")}.narinfo`, "narinfo"],
    [`${hashOf("a")}.ls`, "listing"],
    ["nar/1abc.nar.xz", "nar"],
    ["log/abc-hello.drv", "log"],
    ["realisations/sha256:abc!out.doi", "layout"],
    ["debuginfo/0123456789abcdef", "layout"],
    ["backup.tar", "unknown"],
    ["eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo", "unknown"], // 'e' is not in Nix's base-32 alphabet
    ["nar/", "unknown"],
  ])("%s is %s", (key, kind) => {
    expect(classifyKey(key).kind).toBe(kind);
  });
});

describe("readNarinfoFacts", () => {
  const h = hashOf("hello");
  const dep = hashOf("glibc");
  test("reads StorePath, URL, References (itself and repeats left out) and Deriver", () => {
    const text = [
      `StorePath: /nix/store/${h}-hello`,
      "URL: nar/1x.nar.xz",
      `References: ${dep}-glibc ${h}-hello ${dep}-glibc`,
      `Deriver: ${hashOf("drv")}-hello.drv`,
      "",
    ].join("\n");
    const f = readNarinfoFacts(h, text) as NarinfoFacts;
    expect(f).toEqual({ hash: h, storePath: `/nix/store/${h}-hello`, narKey: "nar/1x.nar.xz", references: [dep], deriver: `${hashOf("drv")}-hello.drv` });
  });
  test("no References line is no references; unknown-deriver is no deriver", () => {
    const f = readNarinfoFacts(h, `StorePath: /nix/store/${h}-x\nURL: nar/a.nar\nDeriver: unknown-deriver\n`) as NarinfoFacts;
    expect(f.references).toEqual([]);
    expect(f.deriver).toBeUndefined();
  });
  test("what Nix could not use either is unreadable, with why", () => {
    expect(readNarinfoFacts(h, "URL: nar/a.nar\n")).toEqual({ hash: h, problem: "no StorePath line" });
    expect(readNarinfoFacts(h, `StorePath: /nix/store/${h}-x\n`)).toEqual({ hash: h, problem: "no URL line" });
    const other = readNarinfoFacts(h, `StorePath: /nix/store/${dep}-glibc\nURL: nar/a.nar\n`);
    expect(isUnreadable(other) && other.problem).toMatch(/does not match its key/);
  });
  test("a URL outside the cache names no NAR key", () => {
    const f = readNarinfoFacts(h, `StorePath: /nix/store/${h}-x\nURL: https://elsewhere/nar/a.nar\n`) as NarinfoFacts;
    expect(f.narKey).toBeUndefined();
  });
  test("storePathHash", () => {
    expect(storePathHash(`/nix/store/${h}-hello`)).toBe(h);
    expect(storePathHash(`/nix/store/${h}`)).toBeUndefined();
    expect(storePathHash("hello")).toBeUndefined();
  });
});

describe("planGc on hand-made caches", () => {
  let bucket: MemoryBucket;
  let c: CacheBuilder;
  beforeEach(() => {
    bucket = new MemoryBucket();
    c = new CacheBuilder(bucket);
    bucket.write("nix-cache-info", "StoreDir: /nix/store\n");
  });

  test("a dependency pushed long ago stays while a recent dependent needs it (the case an expiry rule breaks)", () => {
    c.push({ name: "glibc" });
    bucket.advance(30 * DAY);
    c.push({ name: "hello", refs: ["glibc", "hello"] });
    bucket.advance(DAY);
    const { plan: p, steps } = plan(bucket);
    expect(p.live).toEqual(new Set([c.hash("hello"), c.hash("glibc")]));
    expect(steps).toEqual([]);
    expect(p.roots).toEqual({ recent: 1, young: 0, pinned: 0 });
  });

  test("an old closure goes whole: dependents first, then NARs; nix-cache-info and gc/ never", () => {
    c.push({ name: "lib" });
    c.push({ name: "app", refs: ["lib"] });
    bucket.write("gc/pins/x", "/nix/store/nothing");
    bucket.advance(10 * DAY);
    const { steps } = plan(bucket);
    expect(deletedKeys(steps)).toEqual([c.key("app"), c.key("lib"), "nar/app.nar.xz", "nar/lib.nar.xz"]);
  });

  test("a diamond: the top first, the shared bottom last", () => {
    c.push({ name: "d" });
    c.push({ name: "b", refs: ["d"] });
    c.push({ name: "c", refs: ["d"] });
    c.push({ name: "a", refs: ["b", "c"] });
    bucket.advance(10 * DAY);
    const order = plan(bucket).plan.narinfoSteps.map((s) => s.key);
    expect(order[0]).toBe(c.key("a"));
    expect(order[3]).toBe(c.key("d"));
    expect(order.slice(1, 3).sort()).toEqual([c.key("b"), c.key("c")].sort());
  });

  test("a NAR shared by a live and a dead narinfo stays", () => {
    c.push({ name: "old", nar: "nar/same.nar.xz" });
    bucket.advance(10 * DAY);
    c.push({ name: "new", nar: "nar/same.nar.xz" });
    const { steps } = plan(bucket);
    expect(deletedKeys(steps)).toEqual([c.key("old")]);
  });

  test("pins keep whole closures forever; a pin of a path not in the cache is reported", () => {
    c.push({ name: "base" });
    c.push({ name: "system", refs: ["base"] });
    c.push({ name: "other" });
    bucket.advance(100 * DAY);
    const pins = [
      { name: "laptop", storePath: c.storePath("system") },
      { name: "gone", storePath: `/nix/store/${hashOf("never-pushed")}-x` },
    ];
    const { plan: p, steps } = plan(bucket, { pins });
    expect(p.live).toEqual(new Set([c.hash("system"), c.hash("base")]));
    expect(p.roots.pinned).toBe(1);
    expect(p.missingPins.map((m) => m.name)).toEqual(["gone"]);
    expect(deletedKeys(steps)).toEqual([c.key("other"), "nar/other.nar.xz"]);
  });

  test("pins whose closures overlap or contain each other mark each path once", () => {
    c.push({ name: "x" });
    c.push({ name: "y", refs: ["x"] });
    c.push({ name: "z", refs: ["y", "x"] });
    bucket.advance(100 * DAY);
    const pins = ["x", "y", "z", "z"].map((n, i) => ({ name: `p${i}`, storePath: c.storePath(n) }));
    const { plan: p, steps } = plan(bucket, { pins });
    expect(p.live.size).toBe(3);
    expect(steps).toEqual([]);
  });

  test("narinfos referencing each other in a cycle (Nix never writes one) are kept, not half-deleted", () => {
    c.push({ name: "p", refs: ["q"] });
    c.push({ name: "q", refs: ["p"] });
    c.push({ name: "top", refs: ["p"] });
    bucket.advance(10 * DAY);
    const { plan: p } = plan(bucket);
    expect(p.cycles.sort()).toEqual([c.key("p"), c.key("q")].sort());
    expect(p.narinfoSteps.map((s) => s.key)).toEqual([c.key("top")]);
  });

  test("young paths are roots even with --retain-days 0 (a push may be in flight); --grace 0s then keeps only pins", () => {
    c.push({ name: "dep" });
    c.push({ name: "fresh", refs: ["dep"] });
    bucket.advance(HOUR);
    expect(plan(bucket, { retainMs: 0 }).steps).toEqual([]);
    expect(plan(bucket, { retainMs: 0, graceMs: 0 }).plan.counts.deadNarinfos).toBe(2);
  });

  test("NARs and orphans younger than the grace period stay (a NAR is uploaded before its narinfo)", () => {
    bucket.write("nar/in-flight.nar.xz", "x");
    bucket.write(`${hashOf("nothing")}.ls`, "{}");
    bucket.advance(HOUR);
    expect(plan(bucket).steps).toEqual([]);
    bucket.advance(6 * HOUR);
    expect(deletedKeys(plan(bucket).steps).sort()).toEqual([`${hashOf("nothing")}.ls`, "nar/in-flight.nar.xz"].sort());
  });

  test("a listing goes right after its narinfo; a log goes when no remaining narinfo names its deriver", () => {
    c.push({ name: "keep", deriver: "aaa-keep.drv" });
    c.push({ name: "drop", deriver: "bbb-drop.drv" });
    bucket.write(`${c.hash("drop")}.ls`, "{}");
    bucket.write("log/aaa-keep.drv", "log");
    bucket.write("log/bbb-drop.drv", "log");
    bucket.advance(10 * DAY);
    const pins = [{ name: "k", storePath: c.storePath("keep") }];
    expect(deletedKeys(plan(bucket, { pins }).steps)).toEqual([c.key("drop"), `${c.hash("drop")}.ls`, "log/bbb-drop.drv", "nar/drop.nar.xz"]);
  });

  test("keys outside the cache's layout are reported and never deleted; realisations and debuginfo stay", () => {
    bucket.write("backup.tar", "x");
    bucket.write("realisations/sha256:1!out.doi", "{}");
    bucket.advance(100 * DAY);
    const { plan: p, steps } = plan(bucket, { retainMs: 0, graceMs: 0 });
    expect(p.unknownKeys).toEqual(["backup.tar"]);
    expect(p.layoutKeys).toBe(1);
    expect(steps).toEqual([]);
  });

  test("an unreadable narinfo is kept and reported", () => {
    bucket.write(`${hashOf("bad")}.narinfo`, "garbage\n");
    bucket.advance(100 * DAY);
    const { plan: p, steps } = plan(bucket);
    expect(p.unreadable).toEqual([{ hash: hashOf("bad"), problem: "no StorePath line" }]);
    expect(steps).toEqual([]);
  });

  describe("closures already broken (e.g. by the old expiry rule)", () => {
    beforeEach(() => {
      c.push({ name: "dep" });
      c.push({ name: "mid", refs: ["dep"] });
      c.push({ name: "top", refs: ["mid"] });
      c.push({ name: "fine" });
      bucket.objects.delete(c.key("dep")); // expired on its own
      bucket.objects.delete("nar/fine.nar.xz"); // a narinfo that outlived its NAR
      bucket.advance(DAY);
    });

    test("are reported, and removed dependents first so the invariant is whole again", () => {
      expect(violations(bucket).sort()).toEqual([c.key("fine"), c.key("mid")].sort());
      const { plan: p, steps } = plan(bucket);
      expect(p.broken.map((b) => [b.key, b.missingReferences, b.missingNar, b.brokenReferences, b.removed])).toEqual(
        [
          [c.key("fine"), [], "nar/fine.nar.xz", [], true],
          [c.key("mid"), [c.hash("dep")], undefined, [], true],
          [c.key("top"), [], undefined, [c.hash("mid")], true],
        ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      );
      const order = p.narinfoSteps.map((s) => s.key);
      expect(order.indexOf(c.key("top"))).toBeLessThan(order.indexOf(c.key("mid")));
      expect(p.narinfoSteps.every((s) => s.reason === "broken")).toBe(true);
      for (const s of steps) bucket.objects.delete(s.key);
      expect(violations(bucket)).toEqual([]);
    });

    test("with repairBroken false they are only reported", () => {
      const { plan: p, steps } = plan(bucket, { repairBroken: false });
      expect(p.broken).toHaveLength(3);
      expect(p.broken.every((b) => b.live && !b.removed)).toBe(true);
      // Only the NAR whose narinfo expired: no narinfo names it.
      expect(deletedKeys(steps)).toEqual(["nar/dep.nar.xz"]);
    });
  });
});

describe("dependentsFirst", () => {
  test("orders a chain and ignores self-references", () => {
    const refs: Record<string, string[]> = { a: ["b", "a"], b: ["c"], c: ["c"] };
    expect(dependentsFirst(new Set(["c", "b", "a"]), (h) => ({ references: refs[h] }))).toEqual({ order: ["a", "b", "c"], cycles: [] });
  });
});

describe("the invariant holds after every single delete of a plan (generated caches)", () => {
  /** A random cache: a DAG (references only to earlier paths), random ages, shared NARs, pins, some damage. */
  function generated(seed: number, size: number) {
    const rnd = prng(seed);
    const bucket = new MemoryBucket();
    const c = new CacheBuilder(bucket);
    bucket.write("nix-cache-info", "StoreDir: /nix/store\n");
    const names: string[] = [];
    for (let i = 0; i < size; i++) {
      const name = `p${seed}-${i}`;
      const refs = names.filter(() => rnd() < Math.min(0.5, 3 / (names.length + 1)));
      if (rnd() < 0.1) refs.push(name); // self-reference
      const nar = rnd() < 0.1 && i > 0 ? `nar/shared-${Math.floor(rnd() * 3)}.nar.xz` : undefined;
      c.push({ name, refs, nar, deriver: rnd() < 0.3 ? `${name}.drv` : undefined });
      if (rnd() < 0.2) bucket.write(`${c.hash(name)}.ls`, "{}");
      if (rnd() < 0.2) bucket.write(`log/${name}.drv`, "log");
      names.push(name);
      bucket.advance(Math.floor(rnd() * 2 * DAY));
    }
    // Damage as the old expiry rule leaves it.
    for (const name of names) if (rnd() < 0.05) bucket.objects.delete(c.key(name));
    for (const key of bucket.keys()) if (key.startsWith("nar/") && rnd() < 0.03) bucket.objects.delete(key);
    const pins = names.filter(() => rnd() < 0.05).map((n, i) => ({ name: `pin${i}`, storePath: c.storePath(n) }));
    return { bucket, pins, retainMs: Math.floor(rnd() * 20) * DAY, graceMs: rnd() < 0.5 ? 0 : 6 * HOUR };
  }

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) {
    test(`seed ${seed}: no delete ever adds a violation; after the whole plan there are none`, () => {
      const g = generated(seed, 30 + seed * 5);
      const before = new Set(violations(g.bucket));
      const { steps, plan: p } = plan(g.bucket, g);
      expect(steps.length).toBeGreaterThan(0);
      for (const step of steps) {
        g.bucket.objects.delete(step.key);
        const now = violations(g.bucket);
        const added = now.filter((v) => !before.has(v));
        if (added.length > 0) throw new Error(`seed ${seed}: deleting ${step.key} broke ${added.join(", ")}`);
      }
      expect(violations(g.bucket)).toEqual([]);
      // Every live path that was whole is still there, with its NAR.
      for (const hash of p.live) {
        if (p.broken.some((b) => b.key === narinfoKey(hash))) continue;
        expect(g.bucket.objects.has(narinfoKey(hash))).toBe(true);
      }
      expect(g.bucket.objects.has("nix-cache-info")).toBe(true);
    });
  }
});

describe("durations", () => {
  test.each([
    ["6h", 6 * HOUR],
    ["0s", 0],
    ["90m", 90 * 60_000],
    ["1h30m", 90 * 60_000],
    ["2d", 2 * DAY],
    ["1.5h", 1.5 * HOUR],
  ])("%s", (text, ms) => expect(parseDuration(text)).toBe(ms));
  test.each(["", "6", "h", "-1h", "6 h", "1w"])("%s is not a duration", (text) => expect(parseDuration(text)).toBeUndefined());
  test("formatDuration", () => {
    expect(formatDuration(6 * HOUR)).toBe("6h");
    expect(formatDuration(DAY + 2 * HOUR)).toBe("1d 2h");
    expect(formatDuration(0)).toBe("0s");
  });
});
