// The resign figure of `npm run bench` (--only resign): `npm run resign` over N narinfos (default 10,000, each
// signed by the previous key only, with its NAR) of a two-key stack, against the floor of the same S3 requests
// made directly with resign's own client (lib/s3/client.ts) from one node process with the same concurrency
// (list, GET each narinfo, HEAD + metadata copy of its NAR, PUT with If-Match), interleaved run by run; the bucket is reset to the same state before each.
// Also the peak memory of the resign process (VmHWM of its node process, read from /proc while it runs; the
// pulumi CLI it starts to read the stack is not counted) and the time of a second run (nothing to sign).
// Run directly (`node -r ts-node/register/transpile-only bench/resignBench.ts floor`) it is that floor: the
// target from BENCH_ENDPOINT, BENCH_ADMIN_USER, BENCH_ADMIN_PASSWORD, BENCH_BUCKET, BENCH_CONCURRENCY.
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import { fingerprint, nix32, parseNarinfo } from "../lib/signing/narinfo";
import { publicKeyOf, signDetached } from "../lib/signing/signingKey";
import { S3Rest } from "../lib/s3/client";
import { MinioServer } from "../harness/minio";
import { createTestStack, minioConfig, PROJECT_DIR } from "../harness/stack";
import { fmt, median, mib, timed } from "./measure";

const BUCKET = "nix-cache-resign";
const CONCURRENCY = 8;
const K1 = "bench-resign-1";
const K2 = "bench-resign-2";

async function pool<T>(items: readonly T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

/** Narinfo number i as the builder uploads it: signed by the previous key only; its NAR's key. */
function narinfo(i: number, previousSecret: string): { key: string; nar: string; body: Buffer } {
  const hashPart = nix32(crypto.createHash("sha1").update(`bench-${i}`).digest());
  const narHash = nix32(crypto.createHash("sha256").update(`nar-${i}`).digest());
  const nar = `nar/${narHash}.nar.zst`;
  const base =
    `StorePath: /nix/store/${hashPart}-bench-${i}\nURL: ${nar}\nCompression: zstd\nFileHash: sha256:${narHash}\n` +
    `FileSize: ${400 + i}\nNarHash: sha256:${narHash}\nNarSize: ${1000 + i}\n` +
    `References: ${hashPart}-bench-${i}\nDeriver: ${hashPart.slice(0, 31)}0-bench-${i}.drv\n`;
  const text = `${base}Sig: ${signDetached(previousSecret, fingerprint(parseNarinfo(base)))}\n`;
  return { key: `${hashPart}.narinfo`, nar, body: Buffer.from(text) };
}

async function upload(s3: S3Rest, items: { key: string; body: Buffer }[], contentType: string): Promise<void> {
  await pool(items, 16, async (o) => {
    await s3.put(o.key, o.body, { contentType });
  });
}

/** The bench's bucket as the MinIO root user. */
const rootBucket = (endpoint: string, accessKey: string, secretKey: string, bucket = BUCKET) =>
  new S3Rest({ endpoint, region: "us-east-1", bucket, accessKey, secretKey });

/** The floor: the S3 requests resign makes for each narinfo, without reading the stack, parsing or signing. */
async function floor(s3: S3Rest, concurrency: number): Promise<number> {
  const started = process.hrtime.bigint();
  const keys: string[] = [];
  for await (const o of s3.list()) if (o.key.endsWith(".narinfo")) keys.push(o.key);
  const sigLine = Buffer.from(`Sig: ${K2}:${Buffer.alloc(64, 1).toString("base64")}\n`);
  await pool(keys, concurrency, async (key) => {
    const got = await s3.get(key);
    if (!got) throw new Error(`${key} is gone`);
    const nar = /^URL: (.*)$/m.exec(got.body.toString("utf8"))?.[1] ?? "";
    const head = await s3.head(nar);
    if (!head) throw new Error(`${nar} is gone`);
    await s3.touch(nar, "application/x-nix-nar", head.etag, { metadata: head.metadata });
    const put = await s3.put(key, Buffer.concat([got.body, sigLine]), { ifMatch: got.etag, metadata: got.metadata });
    if (put.outcome !== "written") throw new Error(`${key}: ${put.outcome}`);
  });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Runs resign as its own node process, timing it and following its peak RSS (VmHWM) in /proc. */
function resignRun(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; peakBytes: number; stdout: string }> {
  const started = process.hrtime.bigint();
  const child = spawn("node", ["-r", "ts-node/register/transpile-only", "scripts/resign.ts", ...args], {
    cwd: PROJECT_DIR,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let peakBytes = 0;
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (m) peakBytes = Math.max(peakBytes, Number(m[1]) * 1024);
    } catch {
      // exited between two samples
    }
  };
  const timer = setInterval(sample, 50);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.on("close", (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) reject(new Error(`resign exited ${code}:\n${stdout}\n${stderr}`));
      else resolve({ seconds, peakBytes, stdout });
    });
  });
}

/** The resign figure on `minio` (the bench's MinIO): its own two-key stack and bucket, removed afterwards. */
export async function runResignBench(minio: MinioServer, opts: { runs: number; narinfos: number }): Promise<void> {
  const t = await createTestStack(
    "bench-resign",
    minioConfig(minio, { keyName: K2, bucket: BUCKET, builderUser: "bench-resign-builder", forceDestroy: "true" }),
  );
  try {
    await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: K1 }, true);
    await t.stack.up();
    const secrets = (await t.stack.outputs()).secretKeys?.value as string[];
    const previous = secrets.find((s) => publicKeyOf(s).startsWith(`${K1}:`));
    if (!previous) throw new Error(`the bench stack has no key ${K1}`);
    const s3 = rootBucket(minio.endpoint, minio.rootUser, minio.rootPassword);
    const items = Array.from({ length: opts.narinfos }, (_, i) => narinfo(i, previous));
    await upload(s3, items.map((it) => ({ key: it.nar, body: Buffer.from(`nar ${it.nar}`) })), "application/x-nix-nar");
    const reset = () => upload(s3, items, "text/x-nix-narinfo");

    const env = { ...process.env, ...t.env };
    const floorEnv = {
      ...env,
      BENCH_ENDPOINT: minio.endpoint,
      BENCH_ADMIN_USER: minio.rootUser,
      BENCH_ADMIN_PASSWORD: minio.rootPassword,
      BENCH_BUCKET: BUCKET,
      BENCH_CONCURRENCY: String(CONCURRENCY),
    };
    const ours: number[] = [];
    const floors: number[] = [];
    const peaks: number[] = [];
    let again = 0;
    // One warm-up of each, then the measured runs, interleaved.
    for (let i = 0; i <= opts.runs; i++) {
      await reset();
      const r = await resignRun(["--stack", t.stack.name], env);
      if (!r.stdout.includes(`resign: ${opts.narinfos} signed, 0 already signed, 0 refused`)) {
        throw new Error(`resign did not sign every narinfo:\n${r.stdout}`);
      }
      if (i === opts.runs) again = (await resignRun(["--stack", t.stack.name], env)).seconds;
      await reset();
      const f = await timed("node", ["-r", "ts-node/register/transpile-only", "bench/resignBench.ts", "floor"], floorEnv);
      if (i === 0) continue;
      ours.push(r.seconds);
      peaks.push(r.peakBytes);
      floors.push(f.seconds);
    }
    // What the process holds before any narinfo: node and ts-node's compiler (resign --help).
    const baseline = (await resignRun(["--help"], env)).peakBytes;
    const ratio = median(ours) / median(floors);
    console.log(
      `resign (${opts.narinfos} narinfos, 2 keys, ${CONCURRENCY} at a time): resign ${fmt(median(ours))} | floor (the same list, GETs, NAR touches and If-Match PUTs from one node process) ${fmt(median(floors))} | ratio ${ratio.toFixed(2)}`,
    );
    console.log(
      `resign: peak memory ${mib(Math.max(...peaks))} (VmHWM of the resign process; ${mib(baseline)} of it before any narinfo, as for --help; ` +
        `the pulumi CLI it runs to read the stack not counted); second run, nothing to sign: ${fmt(again)}`,
    );
  } finally {
    await t.stack.destroy().catch(() => undefined);
    await t.remove();
  }
}

if (require.main === module && process.argv[2] === "floor") {
  const env = process.env;
  const s3 = rootBucket(env.BENCH_ENDPOINT ?? "", env.BENCH_ADMIN_USER ?? "", env.BENCH_ADMIN_PASSWORD ?? "", env.BENCH_BUCKET ?? BUCKET);
  floor(s3, Number(env.BENCH_CONCURRENCY ?? CONCURRENCY)).then(
    (ms) => console.log(`${ms.toFixed(0)}`),
    (err: Error) => {
      console.error(`resign floor: ${err.message}`);
      process.exit(1);
    },
  );
}
