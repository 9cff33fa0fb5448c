// Generated cache contents for the GC's integration tests and its benchmark: store paths with References (a
// DAG with nixpkgs' shape: a few paths everything needs, most paths needing a handful), their narinfos as Nix
// writes them, and a pusher that uploads them the way Nix's S3 store does (a path already present is skipped;
// NAR before narinfo; dependencies before dependents). One way to fill a cache, shared by tests and bench.
import { createHash } from "crypto";
import { narinfoKey } from "../lib/gc/plan";
import { S3Rest } from "../lib/s3/client";

const NIX32 = "0123456789abcdfghijklmnpqrsvwxyz";

/** A valid store-path hash part derived from a name (distinct names, distinct hashes). */
export function hashOf(name: string): string {
  const digest = createHash("sha256").update(name).digest();
  let s = "";
  for (let i = 0; i < 32; i++) s += NIX32[digest[i] % 32];
  return s;
}

/** A deterministic PRNG (mulberry32), so a generated cache can be made again from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One generated store path. */
export interface GeneratedPath {
  name: string;
  hash: string;
  storePath: string;
  /** Names of the paths it references. */
  refs: string[];
  narKey: string;
  narBytes: number;
}

export function storePathOf(name: string): string {
  return `/nix/store/${hashOf(name)}-${name}`;
}

export function generatedPath(name: string, refs: string[] = [], narBytes = 64, narKey?: string): GeneratedPath {
  const hash = hashOf(name);
  return { name, hash, storePath: storePathOf(name), refs, narKey: narKey ?? `nar/${hashOf(`nar-${name}`)}.nar.xz`, narBytes };
}

/** The narinfo Nix writes for a path (unsigned: the GC reads no signature). */
export function narinfoText(p: GeneratedPath): string {
  return [
    `StorePath: ${p.storePath}`,
    `URL: ${p.narKey}`,
    "Compression: xz",
    `FileHash: sha256:${hashOf(`file-${p.name}`)}${hashOf(`file2-${p.name}`).slice(0, 20)}`,
    `FileSize: ${p.narBytes}`,
    `NarHash: sha256:${hashOf(`nar-${p.name}`)}${hashOf(`nar2-${p.name}`).slice(0, 20)}`,
    `NarSize: ${p.narBytes * 3}`,
    `References: ${p.refs.map((r) => `${hashOf(r)}-${r}`).join(" ")}`,
    `Deriver: ${hashOf(`drv-${p.name}`)}-${p.name}.drv`,
    "",
  ].join("\n");
}

/** A chain closure: name-0 ← name-1 ← … ← name-(n-1) (the last is the top), each also referencing itself. */
export function chain(name: string, n: number): GeneratedPath[] {
  const paths: GeneratedPath[] = [];
  for (let i = 0; i < n; i++) {
    const refs = [`${name}-${i}`, ...(i > 0 ? [`${name}-${i - 1}`] : [])];
    paths.push(generatedPath(`${name}-${i}`, refs));
  }
  return paths;
}

/**
 * `count` paths with nixpkgs' shape: path i references 0–12 earlier paths, picked mostly among the first ones
 * (glibc, bash, coreutils are in nearly every closure); dependencies come before dependents.
 */
export function realisticClosures(seed: number, count: number, prefix = "p"): GeneratedPath[] {
  const rnd = prng(seed);
  const paths: GeneratedPath[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${seed}-${i}`;
    const refs = new Set<string>();
    const k = i === 0 ? 0 : Math.floor(rnd() * Math.min(13, i + 1));
    for (let j = 0; j < k; j++) refs.add(paths[Math.floor(Math.pow(rnd(), 3) * i)].name);
    if (rnd() < 0.3) refs.add(name);
    paths.push(generatedPath(name, [...refs], 64 + Math.floor(rnd() * 512)));
  }
  return paths;
}

/**
 * Uploads `paths` (dependencies first) the way Nix's S3 store does: a path whose narinfo is present is skipped,
 * else its NAR goes up, then its narinfo. Returns how many were uploaded.
 */
export async function pushLikeNix(store: S3Rest, paths: readonly GeneratedPath[], opts: { skipExisting?: boolean; concurrency?: number } = {}): Promise<number> {
  let uploaded = 0;
  const one = async (p: GeneratedPath) => {
    if ((opts.skipExisting ?? true) && (await store.head(narinfoKey(p.hash)))) return;
    await store.put(p.narKey, Buffer.alloc(p.narBytes, p.name.length % 251), { contentType: "application/x-nix-nar" });
    await store.put(narinfoKey(p.hash), narinfoText(p), { contentType: "text/x-nix-narinfo" });
    uploaded++;
  };
  const concurrency = opts.concurrency ?? 1;
  if (concurrency === 1) {
    for (const p of paths) await one(p);
    return uploaded;
  }
  // Concurrently, but a path only after the paths it references (by position: dependencies come first).
  const done = new Map<string, Promise<void>>();
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const p = paths[next++];
      const deps = p.refs.filter((r) => r !== p.name).map((r) => done.get(r)).filter((d): d is Promise<void> => d !== undefined);
      const work = Promise.all(deps).then(() => one(p));
      done.set(p.name, work);
      await work;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return uploaded;
}
