// The gc command's arguments, pins and report (lib/gc/command.ts), over an in-memory bucket.
import { EXIT, UsageError } from "../../lib/cli/command";
import { LEASE_KEY } from "../../lib/gc/plan";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import { formatGcReport, GcContext, parseGcCommand, processAlive, runGcAction } from "../../lib/gc/command";
import { acquireLease, runGc } from "../../lib/gc/run";
import { CacheBuilder, hashOf, MemoryBucket } from "./support/gcCache";

const DAY = 86_400_000;

describe("parseGcCommand", () => {
  test("no verb: collect, with the defaults", () => {
    expect(parseGcCommand([])).toEqual({ stack: undefined, action: { kind: "gc", dryRun: false, retainMs: undefined, retainSince: undefined, graceMs: 6 * 3_600_000, repairBroken: true, verbose: false } });
  });
  test("overrides for one run", () => {
    expect(parseGcCommand(["--retain-days", "0", "--grace", "0s", "--dry-run", "--keep-broken", "-s", "prod"])).toEqual({
      stack: "prod",
      action: { kind: "gc", dryRun: true, retainMs: 0, retainSince: undefined, graceMs: 0, repairBroken: false, verbose: false },
    });
    expect(parseGcCommand(["--retain-days", "0.5"])).toMatchObject({ action: { retainMs: DAY / 2 } });
    expect(parseGcCommand(["--retain-since", "2026-12-01T00:00:00Z"])).toMatchObject({ action: { retainSince: new Date(Date.UTC(2026, 11, 1)) } });
    expect(parseGcCommand(["--retain-since", "2026-12-01T01:30:00.250+01:30"])).toMatchObject({ action: { retainSince: new Date(Date.UTC(2026, 11, 1, 0, 0, 0, 250)) } });
  });
  test("pins", () => {
    const path = `/nix/store/${hashOf("sys")}-nixos-system`;
    expect(parseGcCommand(["pin", "laptop", path])).toEqual({ stack: undefined, action: { kind: "pin", name: "laptop", storePath: path } });
    expect(parseGcCommand(["unpin", "laptop", "--stack", "s"])).toEqual({ stack: "s", action: { kind: "unpin", name: "laptop" } });
    expect(parseGcCommand(["pins"])).toEqual({ stack: undefined, action: { kind: "pins" } });
  });
  test.each([
    [["--retain-days=-1"], /--retain-days needs a number of days ≥ 0/],
    [["--retain-days", "x"], /not 'x'/],
    [["--grace", "6"], /--grace needs a duration like 6h/],
    [["--retain-since", "2026-12-01"], /--retain-since needs an ISO 8601 time with a time zone .*not '2026-12-01'/],
    [["--retain-since", "2026-12-01T00:00:00"], /--retain-since needs an ISO 8601 time with a time zone/],
    [["--retain-since", "2026-13-01T00:00:00Z"], /--retain-since needs an ISO 8601 time/],
    [["--retain-since", "2026-12-01T00:00:00Z", "--retain-days", "1"], /--retain-days and --retain-since do not go together/],
    [["pin", "laptop"], /'pin' takes NAME STOREPATH, got 'laptop'/],
    [["pin", "bad/name", `/nix/store/${hashOf("x")}-x`], /pin name 'bad\/name' is not allowed/],
    [["pin", "ok", "/tmp/x"], /'\/tmp\/x' is not a store path/],
    [["pin", "ok", `/nix/store/${hashOf("x")}-x`, "--dry-run"], /--dry-run does not go with 'pin'/],
    [["pins", "x"], /'pins' takes no arguments/],
    [["collect"], /unknown command 'collect' \(allowed: pin, unpin, pins/],
    [["--force"], /unknown argument '--force'/],
  ])("%j is one usage error naming the argument", (argv, message) => {
    expect(() => parseGcCommand(argv)).toThrow(UsageError);
    expect(() => parseGcCommand(argv)).toThrow(message);
  });
});

describe("runGcAction", () => {
  let bucket: MemoryBucket;
  let c: CacheBuilder;
  let lines: string[];
  const io = { log: (l: string) => lines.push(l) };
  const ctx = (): GcContext => ({ store: bucket, retainDays: 7, storeDir: "/nix/store", holder: { host: "h", pid: 1, command: "test" }, settleMs: 0 });
  beforeEach(() => {
    bucket = new MemoryBucket();
    c = new CacheBuilder(bucket);
    lines = [];
    c.push({ name: "base" });
    c.push({ name: "system", refs: ["base"] });
    c.push({ name: "scratch" });
    bucket.advance(30 * DAY);
  });

  test("pin keeps a closure through a GC that keeps nothing else; unpin lets it go", async () => {
    expect(await runGcAction({ kind: "pin", name: "laptop", storePath: c.storePath("system") }, ctx(), io)).toBe(EXIT.ok);
    expect(bucket.objects.get("gc/pins/laptop")?.body.toString()).toBe(`${c.storePath("system")}\n`);
    expect(await runGcAction({ kind: "gc", dryRun: false, retainMs: 0, graceMs: 0, repairBroken: true, verbose: false }, ctx(), io)).toBe(EXIT.ok);
    expect(bucket.keys().filter((k) => k.endsWith(".narinfo")).sort()).toEqual([c.key("base"), c.key("system")].sort());
    lines = [];
    expect(await runGcAction({ kind: "pins" }, ctx(), io)).toBe(EXIT.ok);
    expect(lines).toEqual([`laptop\t${c.storePath("system")}`, "gc: 1 pin"]);
    expect(await runGcAction({ kind: "unpin", name: "laptop" }, ctx(), io)).toBe(EXIT.ok);
    await runGcAction({ kind: "gc", dryRun: false, retainMs: 0, graceMs: 0, repairBroken: true, verbose: false }, ctx(), io);
    expect(bucket.keys().filter((k) => !k.startsWith("gc/"))).toEqual([]);
  });

  test("--retain-since keeps what was pushed or refreshed since then, whenever the run starts", async () => {
    // base and system were pushed 30 days ago (beforeEach); fresh now. A cutoff between them keeps fresh only.
    const cutoff = new Date(bucket.now.getTime() - DAY);
    c.push({ name: "fresh" });
    bucket.advance(3 * DAY); // the run starts later than the cutoff was chosen: the cutoff does not move with it
    expect(await runGcAction({ kind: "gc", dryRun: false, retainSince: cutoff, graceMs: 0, repairBroken: true, verbose: false }, ctx(), io)).toBe(EXIT.ok);
    expect(lines[0]).toContain(`keeping closures pushed or refreshed since ${cutoff.toISOString()}`);
    expect(bucket.objects.has(c.key("fresh"))).toBe(true);
    expect(bucket.objects.has(c.key("system"))).toBe(false);
    expect(bucket.objects.has(c.key("base"))).toBe(false);
  });

  test("--verbose names each deleted key with why", async () => {
    await runGcAction({ kind: "gc", dryRun: false, retainMs: 0, graceMs: 0, repairBroken: true, verbose: true }, ctx(), io);
    expect(lines).toContain(`deleted ${c.key("system")} (dead)`);
    expect(lines).toContain("deleted nar/base.nar.xz (dead)");
    expect(lines.indexOf(`deleted ${c.key("system")} (dead)`)).toBeLessThan(lines.indexOf(`deleted ${c.key("base")} (dead)`));
  });

  test("a pin of a path not in the cache, or outside its store, is refused (exit 1), and so is unpinning nothing", async () => {
    expect(await runGcAction({ kind: "pin", name: "x", storePath: `/nix/store/${hashOf("never")}-x` }, ctx(), io)).toBe(EXIT.failed);
    expect(lines.pop()).toMatch(/is not in the cache .*push it first/);
    expect(await runGcAction({ kind: "pin", name: "x", storePath: `/other/store/${c.hash("system")}-system` }, ctx(), io)).toBe(EXIT.failed);
    expect(lines.pop()).toMatch(/not in the cache's store \/nix\/store/);
    expect(await runGcAction({ kind: "unpin", name: "nope" }, ctx(), io)).toBe(EXIT.failed);
    expect(bucket.keys().some((k) => k.startsWith("gc/pins/"))).toBe(false);
  });

  test("another GC running: refused with exit 1 and who holds it", async () => {
    await acquireLease(bucket, { holder: { host: "builder", pid: 7, command: "nix-cache-gc.service" } });
    expect(await runGcAction({ kind: "gc", dryRun: false, graceMs: 0, repairBroken: true, verbose: false }, ctx(), io)).toBe(EXIT.failed);
    expect(lines.pop()).toMatch(/^gc: refused: another GC is running \(nix-cache-gc.service on builder, pid 7\)/);
    expect(bucket.objects.has(LEASE_KEY)).toBe(true);
  });

  test("the report names broken closures and ends with one summary line", async () => {
    bucket.objects.delete(c.key("base"));
    c.push({ name: "new", refs: ["system"] });
    bucket.write("stray.bin", "x");
    const r = await runGc(bucket, { retainMs: 7 * DAY, graceMs: 0, dryRun: true, holder: { host: "h", pid: 1, command: "t" } });
    const text = formatGcReport(r);
    expect(text).toContain(`broken closure: ${c.storePath("system")} (reference ${c.key("base")} missing): would remove (push it again to restore it)`);
    expect(text).toContain(`broken closure: ${c.storePath("new")} (depends on broken ${c.key("system")}): would remove (push it again to restore it)`);
    expect(text).toContain("not the cache's layout, left alone: 1 keys (stray.bin)");
    expect(text[text.length - 1]).toMatch(/^gc \(dry run\): would keep 0 paths and 0 NARs \(0 B\), would delete 3 paths and 4 NARs \(.*\), 2 broken closures found \(2 would be removed\)$/);
  });
});

describe("processAlive (a lease left by a dead process on this host is stale)", () => {
  test("this process runs; a process that is gone does not", () => {
    expect(processAlive(process.pid)).toBe(true);
    const done = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" });
    expect(processAlive(Number(done.stdout.trim()))).toBe(false);
  });

  test("a killed process not yet reaped (a zombie) does not run", () => {
    const child = spawn("sh", ["-c", "exit 0"]);
    const pid = child.pid as number;
    // Wait synchronously, so node cannot reap it: it stays a zombie until the event loop runs again.
    const until = Date.now() + 5000;
    let state = "";
    while (Date.now() < until) {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z") break;
    }
    expect(state).toBe("Z");
    expect(processAlive(pid)).toBe(false);
  });
});
