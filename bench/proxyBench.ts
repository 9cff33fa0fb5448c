// The read proxy's figures (issue 21), on a MinIO the caller started:
//   pull:   one client GETs a large object through the proxy (HTTP Basic, the proxy signing as the reader) and
//           straight from MinIO (anonymous, the same object in the same bucket), alternating run by run after a
//           warm-up of each; the ratio of the medians is the figure (goal ≤ 1.15).
//   memory: N clients (default 4) pull the object through the proxy at once while its RSS is sampled every
//           50 ms from /proc; the peak (VmHWM) against the proxy's RSS before (goal: flat, < 150 MiB).
// The proxy is the host's script (the bundle under plain node, harness/proxy.ts), as its NixOS module runs it.
// `npm run bench -- --only proxy` runs it (bench/bench.ts).
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { Readable } from "stream";
import { MinioServer } from "../harness/minio";
import { makePrivateBucket, newToken, startProxyProcess } from "../harness/proxy";
import { s3Client } from "../providers/minioClients";
import { fmt, median } from "./measure";

export const PROXY_GOAL = { maxPullRatio: 1.15, maxPeakMiB: 150 } as const;

export interface ProxyBenchOptions {
  /** Measured pulls of each kind, after one warm-up of each (default 5). */
  runs?: number;
  /** The object's size in MiB (default 500). */
  objectMb?: number;
  /** Clients pulling at once for the memory figure (default 4). */
  clients?: number;
  /** Where the lines go (default console.log). */
  log?: (line: string) => void;
}

export interface ProxyFigures {
  objectMb: number;
  /** Seconds per pull, run by run. */
  proxySeconds: number[];
  directSeconds: number[];
  /** median(proxy) / median(direct) */
  ratio: number;
  clients: number;
  /** The proxy's RSS before the concurrent pulls, the highest sample during them, and its VmHWM after, MiB. */
  rssBeforeMiB: number;
  rssMaxSampledMiB: number;
  peakMiB: number;
  /** Seconds the concurrent pulls took. */
  concurrentSeconds: number;
}

/** The figure lines (pure, for the bench's output). */
export function proxyFigureLines(f: ProxyFigures): string[] {
  const mibPerS = (seconds: number, count = 1) => ((f.objectMb * count) / seconds).toFixed(0);
  return [
    `proxy pull (GET of a ${f.objectMb} MiB object, one client): through the proxy ${fmt(median(f.proxySeconds))} (${mibPerS(median(f.proxySeconds))} MiB/s) | ` +
      `MinIO directly, anonymous ${fmt(median(f.directSeconds))} (${mibPerS(median(f.directSeconds))} MiB/s) | ratio ${f.ratio.toFixed(2)} (goal ≤ ${PROXY_GOAL.maxPullRatio})`,
    `proxy memory (${f.clients} clients pulling the ${f.objectMb} MiB object at once, ${fmt(f.concurrentSeconds)}): RSS ${f.rssBeforeMiB.toFixed(0)} MiB before, ` +
      `at most ${f.rssMaxSampledMiB.toFixed(0)} MiB sampled, peak ${f.peakMiB.toFixed(0)} MiB (goal: flat, < ${PROXY_GOAL.maxPeakMiB} MiB)`,
  ];
}

/** Random bytes, `size` in all, produced as read (the object never sits in memory whole). */
function randomStream(size: number): Readable {
  let left = size;
  return new Readable({
    read() {
      const n = Math.min(left, 1 << 20);
      left -= n;
      this.push(n > 0 ? crypto.randomBytes(n) : null);
    },
  });
}

/** A streamed GET whose body is counted and dropped; its seconds. Throws unless 200 with `bytes` bytes. */
function timedPull(url: string, headers: Record<string, string>, bytes: number): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        let got = 0;
        res.on("data", (c: Buffer) => (got += c.length));
        res.on("end", () => {
          if (res.statusCode !== 200 || got !== bytes) reject(new Error(`GET ${url}: ${res.statusCode}, ${got} of ${bytes} bytes`));
          else resolve(Number(process.hrtime.bigint() - started) / 1e9);
        });
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

export async function proxyFigures(minio: MinioServer, opts: ProxyBenchOptions = {}): Promise<ProxyFigures> {
  const runs = opts.runs ?? 5;
  const objectMb = opts.objectMb ?? 500;
  const clients = opts.clients ?? 4;
  const log = opts.log ?? ((line: string) => console.log(line));
  if (minio.tls) throw new Error("proxyFigures: start MinIO over http (the figures compare plain transfers)");
  const bucket = "proxy-bench";
  const key = "nar/proxy-bench.nar";
  const size = objectMb * 1024 * 1024;
  const reader = await makePrivateBucket(minio, bucket);
  const root = s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, { accessKey: minio.rootUser, secretKey: minio.rootPassword });
  await root.putObject(bucket, key, randomStream(size), size, { "Content-Type": "application/x-nix-nar" });
  // The direct pull is anonymous, as a public cache's hosts read: the same object, a read-only policy.
  await root.setBucketPolicy(
    bucket,
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: [`arn:aws:s3:::${bucket}/*`] }] }),
  );
  const token = newToken();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-proxy-bench-"));
  const proxy = await startProxyProcess({ dir, minio, bucket, reader, tokens: { bench: token } });
  try {
    const auth = { authorization: `Basic ${Buffer.from(`bench:${token}`).toString("base64")}` };
    const viaProxy = () => timedPull(`${proxy.url}/${key}`, auth, size);
    const direct = () => timedPull(`${minio.endpoint}/${bucket}/${key}`, {}, size);
    const proxySeconds: number[] = [];
    const directSeconds: number[] = [];
    for (let i = 0; i <= runs; i++) {
      // Alternating, the order swapped each run, so the machine's drift hits both alike.
      let p: number;
      let d: number;
      if (i % 2 === 0) {
        p = await viaProxy();
        d = await direct();
      } else {
        d = await direct();
        p = await viaProxy();
      }
      if (i === 0) continue;
      proxySeconds.push(p);
      directSeconds.push(d);
    }
    const before = proxy.memory();
    let maxSampled = before.rssKiB;
    const sampler = setInterval(() => {
      maxSampled = Math.max(maxSampled, proxy.memory().rssKiB);
    }, 50);
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: clients }, () => viaProxy()));
    const concurrentSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    clearInterval(sampler);
    const after = proxy.memory();
    const figures: ProxyFigures = {
      objectMb,
      proxySeconds,
      directSeconds,
      ratio: median(proxySeconds) / median(directSeconds),
      clients,
      rssBeforeMiB: before.rssKiB / 1024,
      rssMaxSampledMiB: Math.max(maxSampled, after.rssKiB) / 1024,
      peakMiB: after.peakKiB / 1024,
      concurrentSeconds,
    };
    for (const line of proxyFigureLines(figures)) log(line);
    return figures;
  } finally {
    await proxy.stop();
    await root.removeObject(bucket, key).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
