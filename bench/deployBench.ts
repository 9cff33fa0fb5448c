// The deploy figures of `npm run bench`, before and after the provider plugin (issue 22) in one run: the program
// of eface94 (the last with dynamic providers, kept as tests/fixtures/dynamic-eface94.tar.gz and unpacked to a temp
// dir) and this checkout's, each on a stack and bucket of its own on the same MinIO, each with an engine floor of
// its own shape (bench/engineFloor.ts), and the direct calls (bench/floor.ts) once a round for both. Round by
// round: before up, destroy, its floor's up, destroy; the same for after; the direct calls — so drift of the
// machine's speed hits all alike. One warm-up round first, in which each floor takes the shape of its program as
// just deployed and each program's state is measured (exportStack's JSON). Then both programs and floors are
// deployed and the no-op `preview --refresh` is measured the same way, round by round.
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { minioAdmin, s3Client } from "../providers/minioClients";
import { MinioServer } from "../harness/minio";
import { createTestStack, minioConfig, programFromArchive, PROJECT_DIR, TestStack } from "../harness/stack";
import { createEngineFloor, describeShape, EngineFloor, shortShape } from "./engineFloor";
import { DirectCalls, goalLines, ProgramFigures, programLines } from "./deployFigures";
import { median, timed } from "./measure";

/** The dynamic-provider program the plugin replaced (issue 22): eface94's files. */
export const BEFORE_FIXTURE = path.join(PROJECT_DIR, "tests", "fixtures", "dynamic-eface94.tar.gz");

/** A stack and the program it runs (its workspace's directory), on the backend of `t`. */
export interface ProgramStack {
  t: TestStack;
  stack: Stack;
}

/** Runs the pulumi CLI on a stack, in its program's directory, with the bench backend's environment. */
export const pulumiOn = (p: ProgramStack, ...args: string[]) =>
  timed("pulumi", [...args, "--stack", p.stack.name, "--non-interactive"], { ...process.env, ...p.t.env }, p.stack.workspace.workDir);

/** Times of the no-op `preview --refresh --expect-no-changes` of each stack, run by run side by side, after one
 *  warm-up round: one series per stack, in their order. */
export async function previewTimes(stacks: ProgramStack[], runs: number): Promise<number[][]> {
  const series: number[][] = stacks.map(() => []);
  for (let i = 0; i <= runs; i++) {
    for (const [k, p] of stacks.entries()) {
      const r = await pulumiOn(p, "preview", "--refresh", "--expect-no-changes");
      if (i > 0) series[k].push(r.seconds);
    }
  }
  return series;
}

interface Program extends ProgramStack {
  label: string;
  floor: EngineFloor;
  figures: ProgramFigures;
}

/** The stack size after `up`: the length of the exported state's JSON, and its resources. */
async function stateSize(stack: Stack): Promise<{ bytes: number; resources: number }> {
  const exported = await stack.exportStack();
  const resources = (exported.deployment as { resources?: unknown[] }).resources ?? [];
  return { bytes: Buffer.byteLength(JSON.stringify(exported)), resources: resources.length };
}

function newProgram(label: string, p: ProgramStack, floor: EngineFloor): Program {
  return {
    ...p,
    label,
    floor,
    figures: { label, shape: "", stateBytes: 0, resources: 0, up: [], engineUp: [], down: [], engineDown: [], preview: [], enginePreview: [] },
  };
}

/**
 * The deploy figures of the dynamic-provider program (before) and of `after` (this checkout's, the bench's stack,
 * deployed when this returns), interleaved on `minio`; prints them and the goals. Returns the no-op
 * `preview --refresh` times of `after` (the scale figure's 0 objects).
 */
export async function runDeployBench(after: TestStack, minio: MinioServer, runs: number): Promise<number[]> {
  // Its own bucket, and so its own users (before-cache-builder, -gc: a name short enough for MinIO, else the
  // default names would clash) and policies: both stacks are deployed side by side for the previews.
  const beforeConfig = minioConfig(minio, { forceDestroy: "true", bucket: "before-cache" });
  const tb = await createTestStack("bench-before", beforeConfig, "ts-node");
  const cleanups: (() => Promise<void>)[] = [async () => tb.remove()];
  try {
    const earlier = await programFromArchive(tb, BEFORE_FIXTURE, beforeConfig);
    cleanups.unshift(async () => {
      await earlier.stack.destroy().catch(() => undefined);
      earlier.remove();
    });
    const beforeFloor = await createEngineFloor(tb.env);
    cleanups.unshift(() => beforeFloor.remove());
    const afterFloor = await createEngineFloor(after.env);
    cleanups.unshift(() => afterFloor.remove());
    const programs = [
      newProgram("before (dynamic providers, eface94)", { t: tb, stack: earlier.stack }, beforeFloor),
      newProgram("after (provider plugin, this checkout)", { t: after, stack: after.stack }, afterFloor),
    ];
    const direct = await deployRounds(programs, minio, runs);
    for (const p of programs) await pulumiOn(p, "up", "--yes", "--skip-preview");
    for (const p of programs) await p.floor.stack.up();
    const previews = await previewTimes(
      programs.flatMap((p) => [p, { t: p.t, stack: p.floor.stack }]),
      runs,
    );
    programs.forEach((p, k) => {
      p.figures.preview = previews[2 * k];
      p.figures.enginePreview = previews[2 * k + 1];
    });
    for (const p of programs) for (const line of programLines(p.figures, direct)) console.log(line);
    for (const line of goalLines(programs[0].figures, programs[1].figures, direct)) console.log(line);
    return programs[1].figures.preview;
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}

/** The up/destroy rounds; fills each program's figures and returns the direct calls' medians. */
async function deployRounds(programs: Program[], minio: MinioServer, runs: number): Promise<DirectCalls> {
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
  const floorProcess: number[] = [];
  const floorCalls: number[] = [];
  const floorDown: number[] = [];
  for (let i = 0; i <= runs; i++) {
    for (const p of programs) {
      const u = await pulumiOn(p, "up", "--yes", "--skip-preview");
      const blueprint = i === 0 ? await p.floor.mirror(p.stack) : undefined;
      if (i === 0) {
        const size = await stateSize(p.stack);
        p.figures.stateBytes = size.bytes;
        p.figures.resources = size.resources;
      }
      const d = await pulumiOn(p, "destroy", "--yes", "--skip-preview");
      const floor = { t: p.t, stack: p.floor.stack };
      const nu = await pulumiOn(floor, "up", "--yes", "--skip-preview");
      if (blueprint) {
        await p.floor.checkMirror(blueprint);
        p.figures.shape = shortShape(blueprint);
        console.log(`deploy ${p.label}: the engine floor (bench/noopProgram) has its stack's shape: ${describeShape(blueprint)}`);
      }
      const nd = await pulumiOn(floor, "destroy", "--yes", "--skip-preview");
      if (i === 0) continue;
      p.figures.up.push(u.seconds);
      p.figures.down.push(d.seconds);
      p.figures.engineUp.push(nu.seconds);
      p.figures.engineDown.push(nd.seconds);
    }
    const f = await timed("node", ["-r", "ts-node/register/transpile-only", floorScript], floorEnv);
    const cleanStarted = process.hrtime.bigint();
    await cleanFloor();
    const clean = Number(process.hrtime.bigint() - cleanStarted) / 1e9;
    if (i === 0) continue;
    floorProcess.push(f.seconds);
    floorCalls.push(Number(f.stdout.trim()) / 1000);
    floorDown.push(clean);
  }
  return { process: median(floorProcess), calls: median(floorCalls), down: median(floorDown) };
}
