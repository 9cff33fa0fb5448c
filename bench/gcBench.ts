// The GC figure of `npm run bench` (--only gc, issue 12): `gc --dry-run` (lib/gc/run.ts runGc) over a bucket of
// N narinfos with nixpkgs' reference shape and their NARs (harness/cacheFill.ts), against its floor: the same
// ListObjectsV2 of the whole bucket and a GET of every narinfo, made directly with lib/s3/client.ts at the same
// concurrency, without parsing or planning. Each runs in a child node process of its own, so the peak memory
// reported is the run's alone (VmHWM, read by the child itself when it is done); times are the child's own,
// from its first request to its last (node's and ts-node's start-up are not counted), interleaved run by run.
// Run directly (`node -r ts-node/register/transpile-only bench/gcBench.ts gc|floor`) it is one such child: the
// bucket from BENCH_ENDPOINT, BENCH_ADMIN_USER, BENCH_ADMIN_PASSWORD, BENCH_BUCKET, BENCH_CONCURRENCY; it prints
// one JSON line (ChildResult).
import * as fs from "fs";
import * as os from "os";
import { runGc } from "../lib/gc/run";
import { S3Rest } from "../lib/s3/client";
import { pushLikeNix, realisticClosures } from "../harness/cacheFill";
import { MinioServer } from "../harness/minio";
import { fmt, median, mib, timed } from "./measure";

const BUCKET = "nix-cache-gc-bench";
const CONCURRENCY = 16;
const DAY_MS = 86_400_000;
const SEED = 12;

/** What a child prints: its time, its peak RSS and how much it saw (to check both did the same work). */
export interface ChildResult {
  mode: "gc" | "floor";
  /** From the first request to the last, in milliseconds. */
  ms: number;
  /** VmHWM at the end. */
  peakBytes: number;
  /** VmHWM before the first request: node, ts-node and the modules loaded. */
  startBytes: number;
  /** Narinfos read (GETs). */
  narinfos: number;
  /** Objects listed (the floor only; the GC does not report it). */
  objects?: number;
}

/** The child's peak resident set: VmHWM from /proc (bytes), else what node reports (maxRSS is in KiB). */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: node's own figure below
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Reads a child's JSON line, refusing anything else (a bench that prints a figure of nothing is worse than none). */
export function parseChildResult(stdout: string, mode: ChildResult["mode"]): ChildResult {
  const line = stdout.trim().split("\n").pop() ?? "";
  let r: Partial<ChildResult>;
  try {
    r = JSON.parse(line) as Partial<ChildResult>;
  } catch {
    throw new Error(`gc bench: the ${mode} child printed no result:\n${stdout}`);
  }
  const count = (x: unknown) => typeof x === "number" && Number.isFinite(x) && x >= 0;
  if (r.mode !== mode || !count(r.ms) || !count(r.peakBytes) || !count(r.startBytes) || !count(r.narinfos)) {
    throw new Error(`gc bench: the ${mode} child's result is malformed: ${line}`);
  }
  if (r.objects !== undefined && !count(r.objects)) throw new Error(`gc bench: the ${mode} child's result is malformed: ${line}`);
  return r as ChildResult;
}

/** The printed figure: counts, the two medians and their ratio, the peaks. Times in seconds, sizes in bytes. */
export function gcFigureLines(f: {
  narinfos: number;
  objects: number;
  concurrency: number;
  gcSeconds: number[];
  floorSeconds: number[];
  gcPeaks: number[];
  floorPeaks: number[];
  startBytes: number;
}): string[] {
  const gc = median(f.gcSeconds);
  const floor = median(f.floorSeconds);
  return [
    `gc (${f.narinfos} narinfos, ${f.objects} objects, ${f.concurrency} at a time): gc --dry-run ${fmt(gc)} | ` +
      `floor (the same list and narinfo GETs from one node process) ${fmt(floor)} | ratio ${(gc / floor).toFixed(2)}`,
    `gc: peak memory gc --dry-run ${mib(Math.max(...f.gcPeaks))} | floor ${mib(Math.max(...f.floorPeaks))} ` +
      `(VmHWM of each child; ${mib(f.startBytes)} of it before the first request: node, ts-node, the modules)`,
  ];
}

/** One child: the GC's dry run, or the floor. */
async function child(mode: ChildResult["mode"]): Promise<ChildResult> {
  const store = new S3Rest({
    endpoint: process.env.BENCH_ENDPOINT ?? "",
    region: "us-east-1",
    bucket: process.env.BENCH_BUCKET ?? BUCKET,
    accessKey: process.env.BENCH_ADMIN_USER ?? "",
    secretKey: process.env.BENCH_ADMIN_PASSWORD ?? "",
    timeoutMs: 120_000,
  });
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? CONCURRENCY);
  const startBytes = peakRss();
  const started = process.hrtime.bigint();
  let narinfos = 0;
  let objects: number | undefined;
  if (mode === "gc") {
    const report = await runGc(store, {
      dryRun: true,
      retainMs: 7 * DAY_MS,
      graceMs: 6 * 3_600_000,
      holder: { host: os.hostname(), pid: process.pid, command: "npm run bench -- --only gc" },
      concurrency,
    });
    narinfos = report.narinfosRead;
  } else {
    const keys: string[] = [];
    objects = 0;
    for await (const o of store.list()) {
      objects++;
      if (o.key.endsWith(".narinfo")) keys.push(o.key);
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < keys.length) {
          const key = keys[next++];
          if (await store.get(key)) narinfos++;
        }
      }),
    );
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  store.close();
  return { mode, ms, peakBytes: peakRss(), startBytes, narinfos, ...(objects === undefined ? {} : { objects }) };
}

/** The GC figure on `minio` (the bench's MinIO): its own bucket, filled once, removed with the server. */
export async function runGcBench(minio: MinioServer, opts: { runs: number; narinfos: number }): Promise<void> {
  const store = new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, accessKey: minio.rootUser, secretKey: minio.rootPassword });
  await store.makeBucket();
  const paths = realisticClosures(SEED, opts.narinfos);
  const fillStarted = process.hrtime.bigint();
  // A new bucket holds none of them: no HEAD before each path (Nix's check), only the two PUTs.
  const pushed = await pushLikeNix(store, paths, { concurrency: CONCURRENCY, skipExisting: false });
  const fillSeconds = Number(process.hrtime.bigint() - fillStarted) / 1e9;
  store.close();
  if (pushed !== opts.narinfos) throw new Error(`gc bench: pushed ${pushed} of ${opts.narinfos} paths`);
  console.log(`gc: filled ${BUCKET} with ${pushed} narinfos and their NARs (${CONCURRENCY} at a time) in ${fmt(fillSeconds)}`);

  const env = {
    ...process.env,
    BENCH_ENDPOINT: minio.endpoint,
    BENCH_ADMIN_USER: minio.rootUser,
    BENCH_ADMIN_PASSWORD: minio.rootPassword,
    BENCH_BUCKET: BUCKET,
    BENCH_CONCURRENCY: String(CONCURRENCY),
  };
  const run = async (mode: ChildResult["mode"]) => {
    const r = await timed("node", ["-r", "ts-node/register/transpile-only", "bench/gcBench.ts", mode], env);
    const result = parseChildResult(r.stdout, mode);
    if (result.narinfos !== opts.narinfos) throw new Error(`gc bench: the ${mode} child read ${result.narinfos} narinfos, not ${opts.narinfos}`);
    return { ...result, wallSeconds: r.seconds };
  };
  const gc: Awaited<ReturnType<typeof run>>[] = [];
  const floor: Awaited<ReturnType<typeof run>>[] = [];
  // One warm-up of each, then the measured runs, interleaved.
  for (let i = 0; i <= opts.runs; i++) {
    const g = await run("gc");
    const f = await run("floor");
    if (i === 0) continue;
    gc.push(g);
    floor.push(f);
  }
  const objects = floor[0]?.objects ?? 0;
  if (objects !== 2 * opts.narinfos) throw new Error(`gc bench: the floor listed ${objects} objects, not ${2 * opts.narinfos}`);
  const lines = gcFigureLines({
    narinfos: opts.narinfos,
    objects,
    concurrency: CONCURRENCY,
    gcSeconds: gc.map((r) => r.ms / 1000),
    floorSeconds: floor.map((r) => r.ms / 1000),
    gcPeaks: gc.map((r) => r.peakBytes),
    floorPeaks: floor.map((r) => r.peakBytes),
    startBytes: Math.max(...gc.map((r) => r.startBytes)),
  });
  for (const l of lines) console.log(l);
  console.log(
    `gc: whole child processes (with node's and ts-node's start-up): gc --dry-run ${fmt(median(gc.map((r) => r.wallSeconds)))} | floor ${fmt(median(floor.map((r) => r.wallSeconds)))}`,
  );
}

if (require.main === module && (process.argv[2] === "gc" || process.argv[2] === "floor")) {
  child(process.argv[2]).then(
    (r) => console.log(JSON.stringify(r)),
    (err: Error) => {
      console.error(`gc bench ${process.argv[2]}: ${err.message}`);
      process.exit(1);
    },
  );
}
