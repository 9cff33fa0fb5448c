// `npm run bench`: the speeds users feel, each against its floor, measured side by side in one run (this
// machine is noisy: the ratios are the figures to trust, not the absolute times). Starts its own MinIO.
//   deploy: `pulumi up` from empty against two floors, interleaved run by run: the engine's (`up` of
//           bench/noopProgram with our stack's shape and a provider that does nothing, bench/engineFloor.ts)
//           and the direct calls' (bench/floor.ts, the same MinIO calls from one node process); our share of
//           `up` is up − engine floor, and its ratio to the direct calls is the one to watch. The same split
//           for destroy and for the no-op `preview --refresh`, and the state's size after `up`. Both before
//           and after the provider plugin (issue 22), in the same rounds: eface94's dynamic-provider program
//           and this checkout's, with the goals met or not (bench/deployBench.ts).
//   scale:  no-op `preview --refresh` with 0 vs N objects in the bucket (must stay ~1)
//   push / pull: see bench/nixBench.ts
//   resign: see bench/resignBench.ts
//   cluster: the pull through node 1 of a 4-node erasure-coded MinIO vs one server (same run, ratio)
//   gc:     see bench/gcBench.ts
//   proxy:  a private cache's read proxy: a large object through it vs anonymous from MinIO, and its memory with
//           4 clients at once (bench/proxyBench.ts)
// Options: --runs N (default 5), --objects N (default 10000), --closure-mb N (default 200), --zstd-levels L,…,
// --gc-narinfos N (default 20000), --only deploy,scale,push,pull,resign,cluster,gc,proxy; --help prints them. A bad option exits 2 before anything starts.
import * as os from "os";
import { commandMain, OptionSpecs, parseCommandLine, positiveInteger, subsetOf, UsageError } from "../lib/cli/command";
import { s3Client } from "../providers/minioClients";
import { MinioServer, startMinio } from "../harness/minio";
import { createTestStack, minioConfig } from "../harness/stack";
import { previewTimes, runDeployBench } from "./deployBench";
import { report } from "./measure";
import { DEFAULT_ZSTD_LEVELS, runNixBench } from "./nixBench";
import { runGcBench } from "./gcBench";
import { runResignBench } from "./resignBench";
import { proxyFigures } from "./proxyBench";

const PARTS = ["deploy", "scale", "push", "pull", "resign", "cluster", "gc", "proxy"] as const;

const USAGE = `usage: npm run bench [-- [--runs N] [--objects N] [--closure-mb N] [--zstd-levels L,…] [--gc-narinfos N] [--only PARTS]]

Measures the speeds users feel against their floors, side by side, on a MinIO of its own (minutes).
  --runs N         measured runs per figure, after one warm-up (default 5; push, pull and resign use at most 3)
  --objects N      objects in the bucket for the scale figure, narinfos for resign (default 10000)
  --closure-mb N   size of the closure pushed and pulled, in MiB (default 200)
  --zstd-levels L  zstd compression levels the push sweeps, comma-separated, each 1-22
                   (default ${DEFAULT_ZSTD_LEVELS.join(",")}; pushUrl's level is always measured)
  --gc-narinfos N  narinfos (each with its NAR) in the bucket for the gc figure (default 20000)
  --only PARTS     which figures, comma-separated: ${PARTS.join(",")} (default all)
  --help, -h       this text
Exit status: 0 measured, 2 could not run (bad arguments, a tool or a step failed).`;

const OPTIONS = {
  runs: { type: "string", valueName: "N" },
  objects: { type: "string", valueName: "N" },
  "closure-mb": { type: "string", valueName: "N" },
  "zstd-levels": { type: "string", valueName: "L,…" },
  "gc-narinfos": { type: "string", valueName: "N" },
  only: { type: "string", valueName: PARTS.join(",") },
} as const satisfies OptionSpecs;

interface Options {
  runs: number;
  objects: number;
  only: Set<string>;
  closureMb: number;
  zstdLevels: number[];
  gcNarinfos: number;
}

/** The value of --zstd-levels: distinct zstd levels 1-22 (what libzstd accepts through Nix), in the order given. */
function zstdLevels(value: string): number[] {
  const levels = value.split(",").map((p) => positiveInteger("--zstd-levels", p.trim()));
  const bad = levels.find((l) => l > 22);
  if (bad !== undefined) throw new UsageError(`--zstd-levels takes levels from 1 to 22, not ${bad} in '${value}'`);
  return [...new Set(levels)];
}

/** The bench's options, defaults filled in; a UsageError for anything else than positive counts and known parts. */
function parseOptions(argv: readonly string[]): Options | "help" {
  const parsed = parseCommandLine(argv, { options: OPTIONS, usage: USAGE });
  if (parsed === "help") return "help";
  const v = parsed.values;
  return {
    runs: v.runs === undefined ? 5 : positiveInteger("--runs", v.runs),
    objects: v.objects === undefined ? 10_000 : positiveInteger("--objects", v.objects),
    closureMb: v["closure-mb"] === undefined ? 200 : positiveInteger("--closure-mb", v["closure-mb"]),
    zstdLevels: v["zstd-levels"] === undefined ? [...DEFAULT_ZSTD_LEVELS] : zstdLevels(v["zstd-levels"]),
    gcNarinfos: v["gc-narinfos"] === undefined ? 20_000 : positiveInteger("--gc-narinfos", v["gc-narinfos"]),
    only: new Set(v.only === undefined ? PARTS : subsetOf("--only", v.only, PARTS)),
  };
}

async function fillBucket(minio: MinioServer, count: number): Promise<void> {
  const s3 = s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, { accessKey: minio.rootUser, secretKey: minio.rootPassword });
  const body = Buffer.alloc(512, "n");
  const workers = 16;
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < count) {
        const i = next++;
        await s3.putObject("nix-cache", `${i.toString(16).padStart(32, "0")}.narinfo`, body, body.length);
      }
    }),
  );
}

async function bench(opts: Options): Promise<void> {
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; median of ${opts.runs} runs`);
  const minio = await startMinio();
  try {
    // The gc figure needs no stack (a bucket of its own, root credentials): `--only gc` deploys nothing.
    if ([...opts.only].some((p) => p !== "gc")) await benchWithStack(minio, opts);
    if (opts.only.has("gc")) await runGcBench(minio, { runs: opts.runs, narinfos: opts.gcNarinfos });
    // The read proxy's raw figures: a bucket and reader of its own.
    if (opts.only.has("proxy")) await proxyFigures(minio, { runs: opts.runs });
  } finally {
    await minio.destroy();
  }
}

/** The figures measured on our stack deployed to `minio` (every part but gc). */
async function benchWithStack(minio: MinioServer, opts: Options): Promise<void> {
  const t = await createTestStack("bench", minioConfig(minio, { forceDestroy: "true" }), "ts-node");
  try {
    // deploy: before and after the provider plugin; leaves our stack deployed, with its no-op previews' times.
    const emptyPreviews = opts.only.has("deploy") ? await runDeployBench(t, minio, opts.runs) : undefined;
    await t.stack.up();
    if (opts.only.has("scale")) {
      const empty = emptyPreviews ?? (await previewTimes([{ t, stack: t.stack }], opts.runs))[0];
      await fillBucket(minio, opts.objects);
      const full = (await previewTimes([{ t, stack: t.stack }], opts.runs))[0];
      report(`scale (no-op preview --refresh, ${opts.objects} vs 0 objects)`, `${opts.objects} objects`, full, "0 objects", empty);
    }
    const nixRuns = Math.min(opts.runs, 3);
    let singlePulls: number[] | undefined;
    if (opts.only.has("push") || opts.only.has("pull") || opts.only.has("proxy")) {
      // The proxy's Nix-level figure is a pull of the same closure beside the anonymous one.
      const only = opts.only.has("proxy") ? new Set([...opts.only, "pull"]) : opts.only;
      singlePulls = (await runNixBench(t, minio, { runs: nixRuns, closureMb: opts.closureMb, zstdLevels: opts.zstdLevels, only })).pullSeconds;
    }
    if (opts.only.has("cluster")) {
      // The same pull on one server (measured above, or now) and through node 1 of a 4-node erasure-coded
      // cluster on this machine (harness/minio.ts `nodes: 4`): what distributed mode costs a client here.
      const pullOnly = { runs: nixRuns, closureMb: opts.closureMb, zstdLevels: opts.zstdLevels, only: new Set(["pull"]) };
      singlePulls ??= (await runNixBench(t, minio, pullOnly)).pullSeconds;
      const cluster = await startMinio({ nodes: 4 });
      const tc = await createTestStack("bench", minioConfig(cluster, { forceDestroy: "true" }), "ts-node");
      try {
        await tc.stack.up();
        const clusterPulls = (await runNixBench(tc, cluster, pullOnly)).pullSeconds;
        if (clusterPulls && singlePulls) report("pull through a 4-node cluster (node 1) vs one server", "cluster", clusterPulls, "one server", singlePulls);
      } finally {
        await tc.stack.destroy().catch(() => undefined);
        await tc.remove();
        await cluster.destroy();
      }
    }
    if (opts.only.has("resign")) await runResignBench(minio, { runs: Math.min(opts.runs, 3), narinfos: opts.objects });
  } finally {
    await t.stack.destroy().catch(() => undefined);
    await t.remove();
  }
}

commandMain(module, { name: "bench", usage: USAGE, parse: parseOptions, run: bench });
