// The decisions of the closure-safe garbage collector (`npm run gc`, and the builder's daily timer): what a
// bucket key is, what a narinfo points at, which paths are live, what is dead, and the order of deletes that
// keeps, at every moment, the cache's invariant:
//
//   every narinfo present has its NAR and the narinfos of all its references.
//
// Roots are narinfos pushed or refreshed within the retention period (LastModified; the builder's drain
// refreshes the paths it finds already cached), narinfos younger than the grace period (a push may be in
// flight: Nix writes NARs before narinfos, and dependencies before dependents), and pins. Everything reachable
// from a root along References is live. Live NARs are the union of the remaining narinfos' URLs, never "the
// NAR of a dead narinfo": NAR keys are content-addressed and can be shared. Why this and not an expiry rule:
// ../shared/facts/cache-retention.md. Pure: no I/O, no imports (bundled into the builder's GC script).

/** Nix's base-32 alphabet: a store path's hash part is 32 of these. */
const HASH = "[0-9a-df-np-sv-z]{32}";
const NARINFO_KEY = new RegExp(`^(${HASH})\\.narinfo$`);
const LISTING_KEY = new RegExp(`^(${HASH})\\.ls$`);
const STORE_HASH = new RegExp(`^${HASH}$`);

/** The prefix of the GC's own bookkeeping (lease, pins): the only keys the GC identity may write. */
export const GC_KEY_PREFIX = "gc/";
export const LEASE_KEY = `${GC_KEY_PREFIX}lease`;
export const PIN_PREFIX = `${GC_KEY_PREFIX}pins/`;

/**
 * What a bucket key is to the GC:
 * - narinfo, nar: what it marks and sweeps;
 * - listing (`<hash>.ls`, write-nar-listing) and log (`log/<drv>`, `nix store copy-log`): swept with their narinfo;
 * - cacheInfo: never deleted; bookkeeping: the GC's own keys (gc/);
 * - layout: keys of Nix's cache layout the GC leaves alone (realisations/, debuginfo/): they carry no References;
 * - unknown: not the cache's layout at all: never deleted, reported.
 */
export type KeyKind = "narinfo" | "nar" | "listing" | "log" | "cacheInfo" | "bookkeeping" | "layout" | "unknown";

export function classifyKey(key: string): { kind: KeyKind; hash?: string } {
  if (key === "nix-cache-info") return { kind: "cacheInfo" };
  if (key.startsWith(GC_KEY_PREFIX)) return { kind: "bookkeeping" };
  const narinfo = NARINFO_KEY.exec(key);
  if (narinfo) return { kind: "narinfo", hash: narinfo[1] };
  const listing = LISTING_KEY.exec(key);
  if (listing) return { kind: "listing", hash: listing[1] };
  if (key.startsWith("nar/") && key.length > 4) return { kind: "nar" };
  if (key.startsWith("log/") && key.length > 4) return { kind: "log" };
  if (key.startsWith("realisations/") || key.startsWith("debuginfo/")) return { kind: "layout" };
  return { kind: "unknown" };
}

export const narinfoKey = (hash: string) => `${hash}.narinfo`;
export const listingKey = (hash: string) => `${hash}.ls`;

/** One object of a listing (LastModified is the server's clock). */
export interface CacheObject {
  key: string;
  lastModified: Date;
  size: number;
  etag: string;
}

/** What the GC needs from a narinfo. */
export interface NarinfoFacts {
  /** The store path's hash part. */
  hash: string;
  storePath: string;
  /** The bucket key of its NAR, or undefined when its URL points outside the cache (never the case for Nix's own). */
  narKey?: string;
  /** Hash parts of its references, itself excluded, de-duplicated. */
  references: string[];
  /** Base name of its deriver (what `log/` keys are named by), when known. */
  deriver?: string;
}

/** A narinfo the GC cannot read: kept (it never deletes what it cannot reason about) and reported. */
export interface UnreadableNarinfo {
  hash: string;
  problem: string;
}

/**
 * A string holding its own characters. What readNarinfoFacts keeps is cut from a narinfo's text, and V8 keeps a
 * sliced string's whole source alive: copied, 100,000 narinfos' facts take 16 MiB instead of 51.
 */
export const ownString = (s: string): string => Buffer.from(s, "utf8").toString("utf8");

/**
 * Reads the fields the GC needs, leniently (the GC must not choke on what Nix accepts): `Name: value` lines;
 * StorePath and URL are required and StorePath's hash must be the key's.
 */
export function readNarinfoFacts(hash: string, text: string, own: (s: string) => string = ownString): NarinfoFacts | UnreadableNarinfo {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(": ");
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    if (!fields.has(name)) fields.set(name, line.slice(colon + 2).replace(/\r$/, ""));
  }
  const storePath = fields.get("StorePath");
  const url = fields.get("URL");
  if (!storePath) return { hash, problem: "no StorePath line" };
  if (!url) return { hash, problem: "no URL line" };
  const base = storePath.slice(storePath.lastIndexOf("/") + 1);
  if (base.slice(0, 32) !== hash) return { hash, problem: `StorePath ${storePath} does not match its key ${narinfoKey(hash)}` };
  const references = new Set<string>();
  for (const ref of (fields.get("References") ?? "").split(" ")) {
    const h = ref.slice(0, 32);
    if (ref !== "" && STORE_HASH.test(h) && h !== hash) references.add(h);
  }
  const deriver = fields.get("Deriver");
  const narKey = narKeyOf(url);
  // `own` copies (or interns: many narinfos reference the same few paths) what is kept, see ownString.
  return {
    hash,
    storePath: own(storePath),
    narKey: narKey === undefined ? undefined : own(narKey),
    references: [...references].map(own),
    deriver: deriver && deriver !== "unknown-deriver" ? own(deriver.slice(deriver.lastIndexOf("/") + 1)) : undefined,
  };
}

export const isUnreadable = (f: NarinfoFacts | UnreadableNarinfo): f is UnreadableNarinfo => "problem" in f;

/** The bucket key a narinfo URL names (relative to the cache root), or undefined for one outside the cache. */
export function narKeyOf(url: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(url) || url.startsWith("/") || url.split("/").includes("..")) return undefined;
  return url;
}

/** The hash part of a store path (`/nix/store/<hash>-name`), or undefined when it is not one. */
export function storePathHash(storePath: string): string | undefined {
  const base = storePath.slice(storePath.lastIndexOf("/") + 1);
  const hash = base.slice(0, 32);
  return storePath.startsWith("/") && STORE_HASH.test(hash) && base.length > 33 && base[32] === "-" ? hash : undefined;
}

export interface PinnedPath {
  name: string;
  storePath: string;
}

export interface GcPolicy {
  /** The server's clock now. */
  now: Date;
  /** Narinfos pushed or refreshed within this many ms are roots. */
  retainMs: number;
  /** Nothing younger than this many ms is deleted, and young narinfos are roots (pushes in flight). */
  graceMs: number;
  pins: readonly PinnedPath[];
  /** Delete narinfos whose closure is already incomplete (default true): the invariant is then whole again. */
  repairBroken?: boolean;
}

/** A narinfo whose closure is incomplete: its NAR, or the narinfo of a reference (or of theirs), is missing. */
export interface BrokenClosure {
  key: string;
  storePath: string;
  /** What it lacks itself: missing references' hashes, its missing NAR, or the broken references it depends on. */
  missingReferences: string[];
  missingNar?: string;
  brokenReferences: string[];
  /** Reachable from a root: hosts may be using it. */
  live: boolean;
  /** It would be (or was) deleted by the plan. */
  removed: boolean;
}

/** One delete of a sweep, in order. */
export interface SweepStep {
  key: string;
  kind: "narinfo" | "listing" | "log" | "nar";
  /** Bytes the object takes (from the listing). */
  size: number;
  /** Why it goes: dead (not reachable and older than the grace period), broken (closure incomplete), orphan (no narinfo). */
  reason: "dead" | "broken" | "orphan";
}

export interface GcPlan {
  /** Hashes of the live narinfos (reachable from a root, closure complete or kept broken). */
  live: Set<string>;
  roots: { recent: number; young: number; pinned: number };
  /** Pins whose path is not in the cache. */
  missingPins: PinnedPath[];
  /** Narinfos, their listings and logs to delete, dependents before dependencies (NARs come after: narSweep). */
  narinfoSteps: SweepStep[];
  broken: BrokenClosure[];
  /** Narinfos that are dead but kept because they reference each other in a cycle (Nix never makes one). */
  cycles: string[];
  unreadable: UnreadableNarinfo[];
  /** Keys outside the cache's layout: never deleted. */
  unknownKeys: string[];
  /** realisations/ and debuginfo/ keys: left alone. */
  layoutKeys: number;
  counts: { narinfos: number; liveNarinfos: number; deadNarinfos: number };
}

/** A listing sorted into what the GC looks at. Memory grows with the number of keys, not with bytes. */
export class Inventory {
  readonly narinfos = new Map<string, CacheObject>(); // by hash
  readonly nars = new Map<string, CacheObject>(); // by key
  readonly listings = new Map<string, CacheObject>(); // by hash
  readonly logs = new Map<string, CacheObject>(); // by key
  readonly unknownKeys: string[] = [];
  layoutKeys = 0;
  cacheInfo = false;

  add(o: CacheObject): void {
    const { kind, hash } = classifyKey(o.key);
    switch (kind) {
      case "narinfo":
        this.narinfos.set(hash ?? "", o);
        break;
      case "nar":
        this.nars.set(o.key, o);
        break;
      case "listing":
        this.listings.set(hash ?? "", o);
        break;
      case "log":
        this.logs.set(o.key, o);
        break;
      case "cacheInfo":
        this.cacheInfo = true;
        break;
      case "layout":
        this.layoutKeys++;
        break;
      case "unknown":
        this.unknownKeys.push(o.key);
        break;
      case "bookkeeping":
        break;
    }
  }

  has(key: string): boolean {
    const { kind, hash } = classifyKey(key);
    if (kind === "narinfo") return this.narinfos.has(hash ?? "");
    if (kind === "nar") return this.nars.has(key);
    if (kind === "listing") return this.listings.has(hash ?? "");
    if (kind === "log") return this.logs.has(key);
    return false;
  }
}

export type FactsByHash = ReadonlyMap<string, NarinfoFacts | UnreadableNarinfo>;

/**
 * Marks from the roots and plans the narinfo sweep. `facts` has an entry for every narinfo of the inventory
 * (a narinfo without one is treated as unreadable: kept).
 */
export function planGc(inventory: Inventory, facts: FactsByHash, policy: GcPolicy): GcPlan {
  const now = policy.now.getTime();
  const retainCutoff = now - policy.retainMs;
  const graceCutoff = now - policy.graceMs;
  const readable = (hash: string): NarinfoFacts | undefined => {
    const f = facts.get(hash);
    return f && !isUnreadable(f) ? f : undefined;
  };

  // Roots.
  const roots = new Set<string>();
  let recent = 0;
  let young = 0;
  let pinned = 0;
  for (const [hash, o] of inventory.narinfos) {
    const t = o.lastModified.getTime();
    if (t > graceCutoff) {
      young++;
      roots.add(hash);
    } else if (t >= retainCutoff) {
      recent++;
      roots.add(hash);
    }
  }
  const missingPins: PinnedPath[] = [];
  for (const pin of policy.pins) {
    const hash = storePathHash(pin.storePath);
    if (hash === undefined || !inventory.narinfos.has(hash)) missingPins.push(pin);
    else {
      if (!roots.has(hash)) pinned++;
      roots.add(hash);
    }
  }

  // Mark along References.
  const live = new Set<string>();
  const queue = [...roots];
  for (const r of queue) live.add(r);
  while (queue.length > 0) {
    const hash = queue.pop() as string;
    for (const ref of readable(hash)?.references ?? []) {
      if (inventory.narinfos.has(ref) && !live.has(ref)) {
        live.add(ref);
        queue.push(ref);
      }
    }
  }

  // Broken closures (of every readable narinfo): its own gaps, then what depends on a broken one, to a fixpoint.
  const brokenInfo = new Map<string, { missingReferences: string[]; missingNar?: string; brokenReferences: string[] }>();
  for (const hash of inventory.narinfos.keys()) {
    const f = readable(hash);
    if (!f) continue;
    const missingReferences = f.references.filter((r) => !inventory.narinfos.has(r));
    const missingNar = f.narKey !== undefined && !inventory.nars.has(f.narKey) ? f.narKey : undefined;
    if (missingReferences.length > 0 || missingNar) brokenInfo.set(hash, { missingReferences, missingNar, brokenReferences: [] });
  }
  const referrers = new Map<string, string[]>();
  for (const hash of inventory.narinfos.keys()) {
    for (const ref of readable(hash)?.references ?? []) {
      if (!inventory.narinfos.has(ref)) continue;
      const list = referrers.get(ref);
      if (list) list.push(hash);
      else referrers.set(ref, [hash]);
    }
  }
  const spread = [...brokenInfo.keys()];
  while (spread.length > 0) {
    const hash = spread.pop() as string;
    for (const dependent of referrers.get(hash) ?? []) {
      const info = brokenInfo.get(dependent);
      if (info) {
        if (!info.brokenReferences.includes(hash)) info.brokenReferences.push(hash);
      } else {
        brokenInfo.set(dependent, { missingReferences: [], brokenReferences: [hash] });
        spread.push(dependent);
      }
    }
  }

  // What goes: dead narinfos (all older than the grace period: young ones are roots) and, when repairing,
  // broken ones. Unreadable narinfos stay: their references are unknown.
  const repair = policy.repairBroken ?? true;
  const doomed = new Set<string>();
  for (const hash of inventory.narinfos.keys()) {
    if (!readable(hash)) continue;
    if (!live.has(hash) || (repair && brokenInfo.has(hash))) doomed.add(hash);
  }
  const { order, cycles } = dependentsFirst(doomed, readable);
  for (const c of cycles) doomed.delete(c);

  const narinfoSteps: SweepStep[] = [];
  for (const hash of order) {
    const o = inventory.narinfos.get(hash) as CacheObject;
    const isBroken = live.has(hash) && brokenInfo.has(hash);
    narinfoSteps.push({ key: o.key, kind: "narinfo", size: o.size, reason: isBroken ? "broken" : "dead" });
    const listing = inventory.listings.get(hash);
    if (listing) narinfoSteps.push({ key: listing.key, kind: "listing", size: listing.size, reason: isBroken ? "broken" : "dead" });
  }
  // Listings whose narinfo is gone, and logs whose deriver no remaining narinfo names.
  for (const [hash, o] of inventory.listings) {
    if (!inventory.narinfos.has(hash) && o.lastModified.getTime() <= graceCutoff) {
      narinfoSteps.push({ key: o.key, kind: "listing", size: o.size, reason: "orphan" });
    }
  }
  const liveDerivers = new Set<string>();
  for (const hash of inventory.narinfos.keys()) {
    const f = readable(hash);
    if (!f) continue;
    if (!doomed.has(hash) && f.deriver) liveDerivers.add(f.deriver);
  }
  for (const [key, o] of inventory.logs) {
    if (!liveDerivers.has(key.slice(4)) && o.lastModified.getTime() <= graceCutoff) {
      narinfoSteps.push({ key, kind: "log", size: o.size, reason: "orphan" });
    }
  }

  const broken: BrokenClosure[] = [...brokenInfo].map(([hash, info]) => ({
    key: narinfoKey(hash),
    storePath: readable(hash)?.storePath ?? hash,
    missingReferences: info.missingReferences,
    missingNar: info.missingNar,
    brokenReferences: info.brokenReferences,
    live: live.has(hash),
    removed: doomed.has(hash),
  }));
  broken.sort((a, b) => a.key.localeCompare(b.key));

  const unreadable = [...facts.values()].filter(isUnreadable).filter((u) => inventory.narinfos.has(u.hash));
  const liveCount = [...inventory.narinfos.keys()].filter((h) => !doomed.has(h)).length;
  return {
    live,
    roots: { recent, young, pinned },
    missingPins,
    narinfoSteps,
    broken,
    cycles: cycles.map(narinfoKey),
    unreadable,
    unknownKeys: [...inventory.unknownKeys].sort(),
    layoutKeys: inventory.layoutKeys,
    counts: { narinfos: inventory.narinfos.size, liveNarinfos: liveCount, deadNarinfos: doomed.size },
  };
}

/**
 * The delete order of `doomed`: a narinfo only after every doomed narinfo that references it (dependents before
 * dependencies), so no narinfo is ever left pointing at a deleted one. Narinfos in a reference cycle cannot be
 * ordered that way; they are returned apart and kept.
 */
export function dependentsFirst(
  doomed: ReadonlySet<string>,
  factsOf: (hash: string) => Pick<NarinfoFacts, "references"> | undefined,
): { order: string[]; cycles: string[] } {
  const waitingFor = new Map<string, number>(); // doomed referrers not yet deleted
  for (const h of doomed) waitingFor.set(h, 0);
  for (const h of doomed) {
    for (const ref of factsOf(h)?.references ?? []) {
      if (ref !== h && waitingFor.has(ref)) waitingFor.set(ref, (waitingFor.get(ref) ?? 0) + 1);
    }
  }
  // Sorted for a stable, reproducible plan.
  const ready = [...doomed].filter((h) => waitingFor.get(h) === 0).sort();
  const order: string[] = [];
  while (ready.length > 0) {
    const h = ready.shift() as string;
    order.push(h);
    for (const ref of factsOf(h)?.references ?? []) {
      if (ref === h || !waitingFor.has(ref)) continue;
      const left = (waitingFor.get(ref) ?? 0) - 1;
      waitingFor.set(ref, left);
      if (left === 0) ready.push(ref);
    }
  }
  const placed = new Set(order);
  return { order, cycles: [...doomed].filter((h) => !placed.has(h)).sort() };
}

/**
 * The NARs to delete once the narinfo sweep is done: NARs that no remaining narinfo's URL names, older than the
 * grace period. `remaining` are the hashes of the narinfos present now. (An unreadable narinfo names no NAR we
 * know of; Nix cannot use it either: it lacks a StorePath or URL, or is filed under another path's hash.)
 */
export function narSweep(inventory: Inventory, facts: FactsByHash, remaining: Iterable<string>, graceCutoff: Date): SweepStep[] {
  const liveNars = new Set<string>();
  for (const hash of remaining) {
    const f = facts.get(hash);
    if (f && !isUnreadable(f) && f.narKey) liveNars.add(f.narKey);
  }
  const steps: SweepStep[] = [];
  for (const [key, o] of inventory.nars) {
    if (!liveNars.has(key) && o.lastModified.getTime() <= graceCutoff.getTime()) steps.push({ key, kind: "nar", size: o.size, reason: "dead" });
  }
  return steps.sort((a, b) => a.key.localeCompare(b.key));
}

/**
 * Every breach of the invariant in a set of present keys: a narinfo whose NAR or a reference's narinfo is
 * absent. Used by tests (after every prefix of a sweep), by `verify`, and by the GC's last look for pushes that
 * raced it.
 */
export function invariantViolations(
  present: { hasNarinfo(hash: string): boolean; hasKey(key: string): boolean; narinfoHashes(): Iterable<string> },
  facts: FactsByHash,
): { key: string; missing: string[] }[] {
  const out: { key: string; missing: string[] }[] = [];
  for (const hash of present.narinfoHashes()) {
    const f = facts.get(hash);
    if (!f || isUnreadable(f)) continue;
    const missing = f.references.filter((r) => !present.hasNarinfo(r)).map(narinfoKey);
    if (f.narKey && !present.hasKey(f.narKey)) missing.push(f.narKey);
    if (missing.length > 0) out.push({ key: narinfoKey(hash), missing });
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** The present-keys view of an inventory for invariantViolations. */
export function inventoryView(inventory: Inventory): Parameters<typeof invariantViolations>[0] {
  return {
    hasNarinfo: (h) => inventory.narinfos.has(h),
    hasKey: (k) => inventory.has(k),
    narinfoHashes: () => inventory.narinfos.keys(),
  };
}

/** Parses a duration like `6h`, `90m`, `30s`, `2d`, `0s`, `1h30m` into ms; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };
  if (!/^(\d+(\.\d+)?[dhms])+$/.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)([dhms])/g)) ms += Number(m[1]) * units[m[2]];
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** A duration for people: `6h`, `1d 2h`, `45s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const parts: string[] = [];
  let left = Math.round(ms / 1000);
  for (const [unit, s] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    if (left >= s) {
      parts.push(`${Math.floor(left / s)}${unit}`);
      left %= s;
    }
  }
  return parts.join(" ") || `${ms}ms`;
}

/** Bytes for people: 1.2 MiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Pin names: what `gc pin NAME` accepts (a key segment under gc/pins/). */
export function checkPinName(name: string): string | undefined {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)
    ? undefined
    : "1 to 64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit";
}
