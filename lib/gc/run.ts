// One run of the closure-safe GC over a GcStore (the bucket through lib/s3/client.ts; unit tests pass an in-memory
// one). The decisions are lib/gc/plan.ts's; this file does the I/O in the order that keeps the invariant:
//
//   1. lease: one GC at a time (gc/lease written with If-None-Match: *, renewed while the run lasts; a lease past
//      its expiry, or left by a dead process on this host, is taken over with If-Match on its ETag);
//   2. inventory (one streaming ListObjectsV2) and a GET of every narinfo;
//   3. re-check: list again just before deleting, reading only narinfos new or changed since; narinfos pushed
//      since are roots too (a push that landed during the reads keeps what it references); mark and plan from
//      this listing (lib/gc/plan.ts planGc; a dry run plans from the first), a missing NAR or reference that makes
//      a closure "broken" confirmed with a HEAD first (listings are not snapshots);
//   4. sweep narinfos one by one, dependents before dependencies (each delete keeps the invariant, so a GC
//      killed at any point leaves a whole cache and the next run finishes the job); then NARs no remaining
//      narinfo names;
//   5. last look: after a short settle time, list again; a narinfo pushed during the sweep that references a
//      path just collected (the pusher saw it present a moment before) is removed, dependents first, so no
//      host is ever served an incomplete closure; the builder pushes it again next time.
// No Pulumi runtime; imports only lib/gc/plan.ts (the builder's GC script bundles both).
import {
  CacheObject,
  dependentsFirst,
  FactsByHash,
  GcPlan,
  Inventory,
  invariantViolations,
  isUnreadable,
  LEASE_KEY,
  narinfoKey,
  NarinfoFacts,
  narSweep,
  ownString,
  PIN_PREFIX,
  PinnedPath,
  planGc,
  readNarinfoFacts,
  SweepStep,
  UnreadableNarinfo,
} from "./plan";

/** The bucket as the GC sees it (lib/s3/client.ts S3Rest has this shape). ETags without quotes. */
export interface GcStore {
  list(prefix?: string): AsyncIterable<CacheObject>;
  get(key: string): Promise<{ body: Buffer; etag: string; lastModified: Date } | undefined>;
  head(key: string): Promise<{ etag: string; lastModified: Date } | undefined>;
  put(
    key: string,
    body: Buffer | string,
    opts?: { contentType?: string; ifAbsent?: boolean; ifMatch?: string },
  ): Promise<{ outcome: "written" | "exists" | "changed" | "gone"; etag?: string }>;
  delete(key: string): Promise<void>;
  serverTime(): Promise<Date>;
}

/** Who runs the GC: written into the lease, so a refused run can say who holds it. */
export interface GcHolder {
  host: string;
  pid: number;
  /** e.g. "npm run gc" or "nix-cache-gc.service". */
  command: string;
}

interface LeaseBody extends GcHolder {
  acquiredAt: string;
  ttlSeconds: number;
}

/** Another GC holds the lease: this run changed nothing. */
export class LeaseHeld extends Error {
  constructor(
    readonly holder: Partial<GcHolder>,
    readonly expires: Date,
  ) {
    super(
      `another GC is running (${holder.command ?? "?"} on ${holder.host ?? "?"}, pid ${holder.pid ?? "?"}); its lease ` +
        `${LEASE_KEY} expires at ${expires.toISOString()} unless it is renewed; nothing was deleted`,
    );
    this.name = "LeaseHeld";
  }
}

export interface GcOptions {
  retainMs: number;
  /** Keep what was pushed or refreshed at or after this time instead (the retention then ends there, whenever the run starts). */
  retainSince?: Date;
  graceMs: number;
  dryRun?: boolean;
  /** Delete narinfos whose closure is already incomplete (default true). */
  repairBroken?: boolean;
  holder: GcHolder;
  /** How long a lease lasts without renewal (default 15 min). */
  leaseTtlMs?: number;
  /** Whether a process of this host is still running (a lease it left is stale once it is not). */
  isLocalProcessAlive?(pid: number): boolean;
  /** GETs at the same time (default 16). */
  concurrency?: number;
  /** Wait before the last look for pushes that raced the sweep (default 2 s). */
  settleMs?: number;
  onPhase?(text: string): void;
  onProgress?(phase: string, done: number, total: number): void;
  /** Called after each delete of the sweep (for --verbose). */
  onDeleted?(step: SweepStep): void;
  /** Test only: runs after the mark's listing and reads, before the re-check (a test pushes here). */
  afterMark?(): Promise<void>;
  /** Test only: waits this long after each delete, so a test can race or kill the sweep. */
  deleteDelayMs?: number;
}

/** The retention as a duration back from `now`: retainMs, or up to retainSince when that is given. */
export function retainMsAt(options: Pick<GcOptions, "retainMs" | "retainSince">, now: Date): number {
  return options.retainSince ? Math.max(0, now.getTime() - options.retainSince.getTime()) : options.retainMs;
}

export interface GcReport {
  dryRun: boolean;
  startedAt: Date;
  retainMs: number;
  graceMs: number;
  plan: GcPlan;
  pins: PinnedPath[];
  /** Objects that stay (narinfos and NARs) and what they take. */
  kept: { narinfos: number; nars: number; bytes: number };
  /** Deleted (or, in a dry run, to delete). */
  deleted: { narinfos: number; listings: number; logs: number; nars: number; bytes: number };
  /** Narinfos pushed while the GC swept that referenced a path it had just collected: removed again. */
  raced: { key: string; missing: string[] }[];
  /** Deletes that failed; the sweep stops at a failed narinfo delete (the order is what keeps the invariant). */
  failed: { key: string; error: string }[];
  /** Set when this run took over a lease left by a GC that died or expired. */
  tookOverLease?: string;
  /** Narinfos read (GETs). */
  narinfosRead: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `work` over `items`, `concurrency` at a time. */
async function eachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
}

class Lease {
  private renewedAt = Date.now();
  constructor(
    private readonly store: GcStore,
    private etag: string,
    private readonly body: LeaseBody,
    readonly ttlMs: number,
  ) {}

  private renewing?: Promise<void>;

  /** Renews when a third of the TTL has passed; throws when someone else has taken the lease. */
  async keep(): Promise<void> {
    if (this.renewing) return this.renewing; // concurrent workers share one renewal (a second would race the ETag)
    if (Date.now() - this.renewedAt < this.ttlMs / 3) return;
    this.renewing = (async () => {
      const r = await this.store.put(LEASE_KEY, JSON.stringify(this.body), { contentType: "application/json", ifMatch: this.etag });
      if (r.outcome !== "written" || !r.etag) throw new Error(`lost the lease ${LEASE_KEY} (taken over by another GC); stopped`);
      this.etag = r.etag;
      this.renewedAt = Date.now();
      this.renewals++;
    })().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** How often the lease was renewed (tests). */
  renewals = 0;

  async release(): Promise<void> {
    const now = await this.store.head(LEASE_KEY);
    if (now && now.etag === this.etag) await this.store.delete(LEASE_KEY);
  }
}

export async function acquireLease(store: GcStore, options: Pick<GcOptions, "holder" | "leaseTtlMs" | "isLocalProcessAlive">): Promise<{ lease: Lease; tookOver?: string }> {
  const ttlMs = options.leaseTtlMs ?? 15 * 60_000;
  const body: LeaseBody = { ...options.holder, acquiredAt: new Date().toISOString(), ttlSeconds: Math.ceil(ttlMs / 1000) };
  const text = JSON.stringify(body);
  for (let attempt = 0; attempt < 5; attempt++) {
    const put = await store.put(LEASE_KEY, text, { contentType: "application/json", ifAbsent: true });
    if (put.outcome === "written" && put.etag) return { lease: new Lease(store, put.etag, body, ttlMs) };
    const held = await store.get(LEASE_KEY);
    if (!held) continue; // released meanwhile: try again
    let other: Partial<LeaseBody> = {};
    try {
      other = JSON.parse(held.body.toString("utf8")) as Partial<LeaseBody>;
    } catch {
      // an unreadable lease counts as expired after the default TTL
    }
    const otherTtlMs = (typeof other.ttlSeconds === "number" ? other.ttlSeconds : ttlMs / 1000) * 1000;
    const expires = new Date(held.lastModified.getTime() + otherTtlMs);
    const now = await store.serverTime();
    const deadHere =
      other.host === options.holder.host && typeof other.pid === "number" && options.isLocalProcessAlive !== undefined && !options.isLocalProcessAlive(other.pid);
    if (now.getTime() <= expires.getTime() && !deadHere) throw new LeaseHeld(other, expires);
    const takeOver = await store.put(LEASE_KEY, text, { contentType: "application/json", ifMatch: held.etag });
    if (takeOver.outcome === "written" && takeOver.etag) {
      const why = deadHere ? `its process ${other.pid} on ${other.host} is gone` : `it expired at ${expires.toISOString()}`;
      return { lease: new Lease(store, takeOver.etag, body, ttlMs), tookOver: `took over the lease of ${other.command ?? "a GC"} (${why})` };
    }
    // Someone else took it over or released it first: look again.
  }
  throw new Error(`could not take the lease ${LEASE_KEY}: it changed on every attempt`);
}

/** The pins (gc/pins/NAME holding a store path). */
export async function readPins(store: GcStore): Promise<PinnedPath[]> {
  const pins: PinnedPath[] = [];
  for await (const o of store.list(PIN_PREFIX)) {
    const got = await store.get(o.key);
    if (!got) continue;
    pins.push({ name: o.key.slice(PIN_PREFIX.length), storePath: got.body.toString("utf8").split("\n")[0].trim() });
  }
  return pins.sort((a, b) => a.name.localeCompare(b.name));
}

/** What the GC has read: the listing, and the narinfos' facts by hash (kept across re-lists by ETag). */
class CacheView {
  inventory = new Inventory();
  readonly facts = new Map<string, NarinfoFacts | UnreadableNarinfo>();
  private readonly factsEtag = new Map<string, string>();
  /** One copy of each string the facts keep (hashes are referenced by many narinfos). */
  private readonly strings = new Map<string, string>();
  private readonly intern = (v: string): string => {
    let kept = this.strings.get(v);
    if (kept === undefined) {
      kept = ownString(v);
      this.strings.set(kept, kept);
    }
    return kept;
  };
  read = 0;

  constructor(
    private readonly store: GcStore,
    private readonly options: GcOptions,
    /** Called now and then during long listings and reads: renews the lease of a run on a big cache. */
    private readonly keepAlive: () => Promise<void> = async () => undefined,
  ) {}

  /** Lists the whole bucket anew and reads every narinfo not read yet at its current ETag. */
  async refresh(phase: string): Promise<string[]> {
    const inventory = new Inventory();
    let listed = 0;
    for await (const o of this.store.list()) {
      inventory.add(o);
      if (++listed % 1000 === 0) {
        this.options.onProgress?.(`${phase}: listing`, listed, 0);
        await this.keepAlive();
      }
    }
    this.inventory = inventory;
    const toRead = [...inventory.narinfos].filter(([hash, o]) => this.factsEtag.get(hash) !== o.etag).map(([hash]) => hash);
    let done = 0;
    await eachConcurrently(toRead, this.options.concurrency ?? 16, async (hash) => {
      await this.readNarinfo(hash);
      if (++done % 100 === 0 || done === toRead.length) {
        this.options.onProgress?.(`${phase}: reading narinfos`, done, toRead.length);
        await this.keepAlive();
      }
    });
    // A narinfo deleted between the listing and its GET is simply not there.
    for (const hash of toRead) if (!this.factsEtag.has(hash)) inventory.narinfos.delete(hash);
    return toRead;
  }

  /**
   * Plans, after confirming with a HEAD each key whose absence makes a live closure broken (a listing is not a
   * snapshot: a NAR written while the listing passed its place is missing from it).
   */
  async plan(now: Date, pins: PinnedPath[]): Promise<GcPlan> {
    for (let round = 0; ; round++) {
      const plan = planGc(this.inventory, this.facts, {
        now,
        retainMs: retainMsAt(this.options, now),
        graceMs: this.options.graceMs,
        pins,
        repairBroken: this.options.repairBroken,
      });
      const suspects = new Set<string>();
      for (const b of plan.broken) {
        if (!b.live) continue;
        for (const r of b.missingReferences) suspects.add(narinfoKey(r));
        if (b.missingNar) suspects.add(b.missingNar);
      }
      let found = false;
      await eachConcurrently([...suspects], this.options.concurrency ?? 16, async (key) => {
        const head = await this.store.head(key);
        if (head) {
          found = true;
          this.inventory.add({ key, lastModified: head.lastModified, size: 0, etag: head.etag });
        }
      });
      if (!found || round >= 3) return plan;
      // A narinfo found this way has not been read yet.
      await this.readMissing();
    }
  }

  private async readMissing(): Promise<void> {
    const missing = [...this.inventory.narinfos.keys()].filter((h) => !this.facts.has(h));
    await eachConcurrently(missing, this.options.concurrency ?? 16, async (hash) => {
      if (!(await this.readNarinfo(hash))) this.inventory.narinfos.delete(hash);
    });
  }

  /** GETs and reads one narinfo; false when it is gone. */
  private async readNarinfo(hash: string): Promise<boolean> {
    const got = await this.store.get(narinfoKey(hash));
    this.read++;
    if (!got) return false;
    this.facts.set(hash, readNarinfoFacts(hash, got.body.toString("utf8"), this.intern));
    this.factsEtag.set(hash, got.etag);
    return true;
  }
}

/** Runs one GC. Throws LeaseHeld (nothing done) when another GC holds the lease. */
export async function runGc(store: GcStore, options: GcOptions): Promise<GcReport> {
  const dryRun = options.dryRun ?? false;
  const phase = (text: string) => options.onPhase?.(text);
  const startedAt = await store.serverTime();
  let lease: Lease | undefined;
  let tookOverLease: string | undefined;
  if (!dryRun) {
    const got = await acquireLease(store, options);
    lease = got.lease;
    tookOverLease = got.tookOver;
    if (tookOverLease) phase(tookOverLease);
  }
  try {
    const view = new CacheView(store, options, async () => lease?.keep());
    phase("listing the bucket and reading every narinfo");
    await view.refresh("mark");
    const deleted = { narinfos: 0, listings: 0, logs: 0, nars: 0, bytes: 0 };
    const failed: { key: string; error: string }[] = [];
    const raced: { key: string; missing: string[] }[] = [];

    if (dryRun) {
      const pins = await readPins(store);
      const plan = await view.plan(startedAt, pins);
      const doomed = new Set(plan.narinfoSteps.filter((s) => s.kind === "narinfo").map((s) => s.key));
      const remaining = [...view.inventory.narinfos.keys()].filter((h) => !doomed.has(narinfoKey(h)));
      const steps = [...plan.narinfoSteps, ...narSweep(view.inventory, view.facts, remaining, new Date(startedAt.getTime() - options.graceMs))];
      for (const s of steps) count(deleted, s);
      return report({ plan, pins, view, deleted, raced, failed, remaining, steps });
    }

    await options.afterMark?.();
    // Re-check just before deleting (the plan comes only from this listing): what was pushed since the mark is
    // young, so a root, and keeps its closure; only narinfos new or changed since the mark are read again.
    phase("listing again before deleting (pushes since the mark keep what they reference)");
    const pins = await readPins(store);
    await view.refresh("re-check");
    const plan = await view.plan(startedAt, pins);

    const doomedHashes = new Set<string>();
    phase(`deleting ${plan.counts.deadNarinfos} narinfos, dependents first`);
    const narinfoSteps = plan.narinfoSteps;
    let done = 0;
    let stopped = false;
    for (const step of narinfoSteps) {
      await lease?.keep();
      try {
        await store.delete(step.key);
        count(deleted, step);
        options.onDeleted?.(step);
        if (step.kind === "narinfo") doomedHashes.add(step.key.slice(0, 32));
      } catch (err) {
        failed.push({ key: step.key, error: (err as Error).message });
        // Everything after it in the order may be what it references: stop here, the next run continues.
        if (step.kind === "narinfo") {
          stopped = true;
          break;
        }
      }
      if (options.deleteDelayMs) await sleep(options.deleteDelayMs);
      options.onProgress?.("deleting narinfos", ++done, narinfoSteps.length);
    }

    const remaining = [...view.inventory.narinfos.keys()].filter((h) => !doomedHashes.has(h));
    if (!stopped) {
      const narSteps = narSweep(view.inventory, view.facts, remaining, new Date(startedAt.getTime() - options.graceMs));
      phase(`deleting ${narSteps.length} NARs no remaining narinfo names`);
      done = 0;
      await eachConcurrently(narSteps, options.concurrency ?? 16, async (step) => {
        await lease?.keep();
        try {
          await store.delete(step.key);
          count(deleted, step);
          options.onDeleted?.(step);
        } catch (err) {
          failed.push({ key: step.key, error: (err as Error).message });
        }
        if (options.deleteDelayMs) await sleep(options.deleteDelayMs);
        options.onProgress?.("deleting NARs", ++done, narSteps.length);
      });
    }

    // The last look: a push that checked a path present a moment before we deleted it may have landed since.
    const before = new Set(view.inventory.narinfos.keys());
    for (let round = 0; round < 5; round++) {
      await sleep(options.settleMs ?? 2000);
      await lease?.keep();
      const changed = new Set(await view.refresh("last look"));
      const violations = invariantViolations(
        { hasNarinfo: (h) => view.inventory.narinfos.has(h), hasKey: (k) => view.inventory.has(k), narinfoHashes: () => view.inventory.narinfos.keys() },
        view.facts,
      ).filter((v) => (options.repairBroken ?? true) || changed.has(v.key.slice(0, 32)) || !before.has(v.key.slice(0, 32)));
      const confirmed: { key: string; missing: string[] }[] = [];
      for (const v of violations) {
        const stillMissing: string[] = [];
        for (const key of v.missing) if (!(await store.head(key))) stillMissing.push(key);
        if (stillMissing.length > 0) confirmed.push({ key: v.key, missing: stillMissing });
      }
      if (confirmed.length === 0) break;
      // Remove them and whatever present narinfo depends on them, dependents first.
      const referrers = new Map<string, string[]>();
      for (const [hash, f] of view.facts) {
        if (isUnreadable(f) || !view.inventory.narinfos.has(hash)) continue;
        for (const r of f.references) {
          const list = referrers.get(r);
          if (list) list.push(hash);
          else referrers.set(r, [hash]);
        }
      }
      const doomed = new Set<string>();
      const queue = confirmed.map((c) => c.key.slice(0, 32));
      while (queue.length > 0) {
        const h = queue.pop() as string;
        if (doomed.has(h)) continue;
        doomed.add(h);
        queue.push(...(referrers.get(h) ?? []));
      }
      const { order } = dependentsFirst(doomed, (h) => {
        const f = view.facts.get(h);
        return f && !isUnreadable(f) ? f : undefined;
      });
      phase(`${confirmed.length} narinfos pushed during the GC reference collected paths: removing them (and ${doomed.size - confirmed.length} that depend on them)`);
      for (const h of order) {
        await store.delete(narinfoKey(h));
        view.inventory.narinfos.delete(h);
        const c = confirmed.find((x) => x.key === narinfoKey(h));
        raced.push({ key: narinfoKey(h), missing: c?.missing ?? [] });
      }
    }
    const finalRemaining = [...view.inventory.narinfos.keys()];
    return report({ plan, pins, view, deleted, raced, failed, remaining: finalRemaining, steps: [] });
  } finally {
    await lease?.release().catch(() => undefined);
  }

  function report(a: {
    plan: GcPlan;
    pins: PinnedPath[];
    view: CacheView;
    deleted: GcReport["deleted"];
    raced: GcReport["raced"];
    failed: GcReport["failed"];
    remaining: string[];
    steps: SweepStep[];
  }): GcReport {
    const gone = new Set(a.steps.map((s) => s.key));
    const keptNars = [...a.view.inventory.nars.values()].filter((o) => !gone.has(o.key));
    const keptNarinfoBytes = a.remaining.reduce((n, h) => n + (a.view.inventory.narinfos.get(h)?.size ?? 0), 0);
    return {
      dryRun,
      startedAt,
      retainMs: retainMsAt(options, startedAt),
      graceMs: options.graceMs,
      plan: a.plan,
      pins: a.pins,
      kept: { narinfos: a.remaining.length, nars: keptNars.length, bytes: keptNarinfoBytes + keptNars.reduce((n, o) => n + o.size, 0) },
      deleted: a.deleted,
      raced: a.raced,
      failed: a.failed,
      tookOverLease,
      narinfosRead: a.view.read,
    };
  }
}

function count(deleted: GcReport["deleted"], step: SweepStep): void {
  if (step.kind === "narinfo") deleted.narinfos++;
  else if (step.kind === "listing") deleted.listings++;
  else if (step.kind === "log") deleted.logs++;
  else deleted.nars++;
  deleted.bytes += step.size;
}

export interface ClosureCheck {
  /** Narinfos in the bucket. */
  narinfos: number;
  /** Narinfos whose closure was checked (all, or a sample). */
  checked: number;
  /** Checked narinfos lacking their NAR or a reference's narinfo, with what is missing. */
  broken: { key: string; storePath: string; missing: string[] }[];
}

/**
 * Checks the invariant on the bucket: every checked narinfo has its NAR and its references' narinfos. One
 * listing, then a GET of each checked narinfo: all of them, or those `pick` chooses from the listing's hashes
 * (`npm run verify` picks a sample; `--full` checks all).
 */
export async function checkClosures(
  store: Pick<GcStore, "list" | "get" | "head">,
  opts: { pick?: (hashes: string[]) => string[]; concurrency?: number } = {},
): Promise<ClosureCheck> {
  const inventory = new Inventory();
  for await (const o of store.list()) inventory.add(o);
  const all = [...inventory.narinfos.keys()];
  const hashes = opts.pick ? opts.pick(all) : all;
  const facts = new Map<string, NarinfoFacts | UnreadableNarinfo>();
  await eachConcurrently(hashes, opts.concurrency ?? 16, async (hash) => {
    const got = await store.get(narinfoKey(hash));
    if (got) facts.set(hash, readNarinfoFacts(hash, got.body.toString("utf8")));
  });
  const checked = new Set(facts.keys());
  const suspects = invariantViolations(
    { hasNarinfo: (h) => inventory.narinfos.has(h), hasKey: (k) => inventory.has(k), narinfoHashes: () => checked.values() },
    facts,
  );
  // A listing is not a snapshot (a path pushed while it ran can be missing from it): confirm with a HEAD.
  const broken: ClosureCheck["broken"] = [];
  for (const v of suspects) {
    const missing: string[] = [];
    for (const key of v.missing) if (!(await store.head(key))) missing.push(key);
    const f = facts.get(v.key.slice(0, 32));
    if (missing.length > 0) broken.push({ key: v.key, storePath: f && !isUnreadable(f) ? f.storePath : v.key, missing });
  }
  return { narinfos: inventory.narinfos.size, checked: checked.size, broken };
}
