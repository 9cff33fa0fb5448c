// `npm run bench`: the speeds users feel, each against its floor, measured side by side in one run (this
// machine is noisy: the ratios are the figures to trust, not the absolute times). Starts its own MinIO.
//   deploy: `pulumi up` from empty vs the same API calls made directly (bench/floor.ts); no-op preview time
//   scale:  no-op `preview --refresh` with 0 vs N objects in the bucket (must stay ~1)
//   push / pull: see bench/nixBench.ts
// Options: --runs N (default 5), --objects N (default 10000), --closure-mb N (default 200),
// --only deploy,scale,push,pull; --help prints them. A bad option exits 2 before anything starts.
import * as os from "os";
import * as path from "path";
import { EXIT, ExitCode, OptionSpecs, parseCommandLine, positiveInteger, runCommand, subsetOf } from "../lib/cli";
import { minioAdmin, s3Client } from "../providers/minioClients";
import { MinioServer, startMinio } from "../harness/minio";
import { createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../harness/stack";
import { fmt, median, report, timed } from "./measure";
import { runNixBench } from "./nixBench";

const PARTS = ["deploy", "scale", "push", "pull"] as const;

const USAGE = `usage: npm run bench [-- [--runs N] [--objects N] [--closure-mb N] [--only PARTS]]

Measures the speeds users feel against their floors, side by side, on a MinIO of its own (minutes).
  --runs N         measured runs per figure, after one warm-up (default 5; push and pull use at most 3)
  --objects N      objects in the bucket for the scale figure (default 10000)
  --closure-mb N   size of the closure pushed and pulled, in MiB (default 200)
  --only PARTS     which figures, comma-separated: ${PARTS.join(",")} (default all)
  --help, -h       this text
Exit status: 0 measured, 2 could not run (bad arguments, a tool or a step failed).`;

const OPTIONS = {
  runs: { type: "string", valueName: "N" },
  objects: { type: "string", valueName: "N" },
  "closure-mb": { type: "string", valueName: "N" },
  only: { type: "string", valueName: PARTS.join(",") },
} as const satisfies OptionSpecs;

interface Options {
  runs: number;
  objects: number;
  only: Set<string>;
  closureMb: number;
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
    only: new Set(v.only === undefined ? PARTS : subsetOf("--only", v.only, PARTS)),
  };
}

async function benchDeploy(t: TestStack, minio: MinioServer, opts: Options): Promise<void> {
  const env = { ...process.env, ...t.env };
  const stackArgs = ["--stack", t.stack.name, "--non-interactive"];
  const target = { endpoint: minio.endpoint, region: "us-east-1" };
  const admin = { accessKey: minio.rootUser, secretKey: minio.rootPassword };
  const floorEnv = { ...process.env, BENCH_ENDPOINT: minio.endpoint, BENCH_ADMIN_USER: minio.rootUser, BENCH_ADMIN_PASSWORD: minio.rootPassword };
  const floorScript = path.join(PROJECT_DIR, "bench", "floor.ts");
  const cleanFloor = async () => {
    const s3 = s3Client(target, admin);
    await minioAdmin.attachPolicy(target, admin, "nixbuilder", "nix-cache-write", true);
    await minioAdmin.removeUser(target, admin, "nixbuilder");
    await minioAdmin.removePolicy(target, admin, "nix-cache-write");
    await s3.removeObject("nix-cache", "nix-cache-info");
    await s3.removeBucket("nix-cache");
  };
  const up: number[] = [];
  const floorProcess: number[] = [];
  const floorCalls: number[] = [];
  // A B A B …, so drift of the machine's speed hits both alike; one warm-up pair first.
  for (let i = 0; i <= opts.runs; i++) {
    const u = await timed("pulumi", ["up", "--yes", "--skip-preview", ...stackArgs], env);
    await timed("pulumi", ["destroy", "--yes", "--skip-preview", ...stackArgs], env);
    const f = await timed("node", ["-r", "ts-node/register/transpile-only", floorScript], floorEnv);
    await cleanFloor();
    if (i === 0) continue;
    up.push(u.seconds);
    floorProcess.push(f.seconds);
    floorCalls.push(Number(f.stdout.trim()) / 1000);
  }
  report("deploy (up from empty vs direct calls, whole process)", "pulumi up", up, "floor", floorProcess);
  report("deploy (up from empty vs the API calls alone)", "pulumi up", up, "calls", floorCalls);
}

async function previewTimes(t: TestStack, runs: number): Promise<number[]> {
  const env = { ...process.env, ...t.env };
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const r = await timed("pulumi", ["preview", "--refresh", "--expect-no-changes", "--stack", t.stack.name, "--non-interactive"], env);
    if (i > 0) times.push(r.seconds);
  }
  return times;
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

async function main(): Promise<ExitCode> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts === "help") {
    console.log(USAGE);
    return EXIT.ok;
  }
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; median of ${opts.runs} runs`);
  const minio = await startMinio();
  const t = await createTestStack("bench", minioConfig(minio, { forceDestroy: "true" }));
  try {
    if (opts.only.has("deploy")) await benchDeploy(t, minio, opts);
    await t.stack.up();
    if (opts.only.has("deploy") || opts.only.has("scale")) {
      const empty = await previewTimes(t, opts.runs);
      console.log(`deploy: no-op preview --refresh ${fmt(median(empty))}`);
      if (opts.only.has("scale")) {
        await fillBucket(minio, opts.objects);
        const full = await previewTimes(t, opts.runs);
        report(`scale (no-op preview --refresh, ${opts.objects} vs 0 objects)`, `${opts.objects} objects`, full, "0 objects", empty);
      }
    }
    if (opts.only.has("push") || opts.only.has("pull")) {
      await runNixBench(t, minio, { runs: Math.min(opts.runs, 3), closureMb: opts.closureMb, only: opts.only });
    }
  } finally {
    await t.stack.destroy().catch(() => undefined);
    await t.remove();
    await minio.destroy();
  }
  return EXIT.ok;
}

if (require.main === module) void runCommand("bench", main, { usage: USAGE });
