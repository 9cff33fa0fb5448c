// Test support for the GC: an in-memory bucket with S3's conditional-write rules and a clock the test moves,
// and generated caches (narinfos with References, shared NARs, listings, logs) of any shape.
import { CacheObject, classifyKey, Inventory, invariantViolations, inventoryView, narinfoKey, NarinfoFacts, readNarinfoFacts, UnreadableNarinfo } from "../../../lib/gc/plan";
import { GcStore } from "../../../lib/gc/run";
import { hashOf, prng } from "../../../harness/cacheFill";

export { hashOf, prng };

interface Stored {
  body: Buffer;
  etag: string;
  lastModified: Date;
}

/** A bucket in memory. `now` is the server clock; every write stamps it. */
export class MemoryBucket implements GcStore {
  readonly objects = new Map<string, Stored>();
  now = new Date("2026-11-01T00:00:00Z");
  private etags = 0;
  /** Called before each delete (a test throws here to "kill" the GC, or pushes to race it). */
  beforeDelete?: (key: string) => void | Promise<void>;
  deletes: string[] = [];

  advance(ms: number): void {
    this.now = new Date(this.now.getTime() + ms);
  }

  write(key: string, body: string | Buffer, lastModified = this.now): void {
    this.objects.set(key, { body: Buffer.from(body), etag: `e${++this.etags}`, lastModified });
  }

  keys(): string[] {
    return [...this.objects.keys()].sort();
  }

  async *list(prefix = ""): AsyncIterable<CacheObject> {
    for (const key of this.keys()) {
      const o = this.objects.get(key);
      if (o && key.startsWith(prefix)) yield { key, lastModified: o.lastModified, size: o.body.length, etag: o.etag };
    }
  }

  async get(key: string) {
    const o = this.objects.get(key);
    return o ? { body: o.body, etag: o.etag, lastModified: o.lastModified } : undefined;
  }

  async head(key: string) {
    const o = this.objects.get(key);
    return o ? { etag: o.etag, lastModified: o.lastModified } : undefined;
  }

  async put(key: string, body: Buffer | string, opts: { ifAbsent?: boolean; ifMatch?: string } = {}) {
    const o = this.objects.get(key);
    if (opts.ifAbsent && o) return { outcome: "exists" as const };
    if (opts.ifMatch !== undefined && !o) return { outcome: "gone" as const };
    if (opts.ifMatch !== undefined && o && o.etag !== opts.ifMatch) return { outcome: "changed" as const };
    this.write(key, body);
    return { outcome: "written" as const, etag: this.objects.get(key)?.etag };
  }

  async delete(key: string): Promise<void> {
    await this.beforeDelete?.(key);
    this.deletes.push(key);
    this.objects.delete(key);
  }

  async serverTime(): Promise<Date> {
    return this.now;
  }

  /** The bucket as the GC would read it: its inventory and every narinfo's facts. */
  snapshot(): { inventory: Inventory; facts: Map<string, NarinfoFacts | UnreadableNarinfo> } {
    const inventory = new Inventory();
    const facts = new Map<string, NarinfoFacts | UnreadableNarinfo>();
    for (const [key, o] of this.objects) {
      inventory.add({ key, lastModified: o.lastModified, size: o.body.length, etag: o.etag });
      const { kind, hash } = classifyKey(key);
      if (kind === "narinfo" && hash) facts.set(hash, readNarinfoFacts(hash, o.body.toString("utf8")));
    }
    return { inventory, facts };
  }

  /** The narinfos that break the invariant now (lacking their NAR or a reference's narinfo). */
  violations(): string[] {
    const { inventory, facts } = this.snapshot();
    return invariantViolations(inventoryView(inventory), facts).map((v) => v.key);
  }
}

export interface PathSpec {
  name: string;
  /** Names of paths it references (itself allowed). */
  refs?: string[];
  /** NAR key; default nar/<name>.nar.xz (give the same to share one). */
  nar?: string;
  deriver?: string;
}

/** The narinfo text Nix writes for a path (fields the GC reads, plus the usual others). */
export function narinfoText(storePath: string, narKey: string, references: string[], deriver?: string): string {
  return [
    `StorePath: ${storePath}`,
    `URL: ${narKey}`,
    "Compression: xz",
    "FileHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0",
    "FileSize: 100",
    "NarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0",
    "NarSize: 200",
    `References: ${references.join(" ")}`,
    ...(deriver ? [`Deriver: ${deriver}`] : []),
    "",
  ].join("\n");
}

/** Writes paths into the bucket the way Nix pushes them: NAR first, then the narinfo, at the bucket's `now`. */
export class CacheBuilder {
  constructor(readonly bucket: MemoryBucket) {}

  hash(name: string): string {
    return hashOf(name);
  }

  storePath(name: string): string {
    return `/nix/store/${this.hash(name)}-${name}`;
  }

  key(name: string): string {
    return narinfoKey(this.hash(name));
  }

  push(spec: PathSpec): void {
    const nar = spec.nar ?? `nar/${spec.name}.nar.xz`;
    this.bucket.write(nar, `NAR of ${nar}`);
    const refs = (spec.refs ?? []).map((r) => `${this.hash(r)}-${r}`);
    this.bucket.write(this.key(spec.name), narinfoText(this.storePath(spec.name), nar, refs, spec.deriver));
  }
}
