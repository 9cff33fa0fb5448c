// Push and pull of a realistic closure with a real Nix (Debian's Nix 2.8, no S3 support compiled in, so the
// push is what `nix copy --to s3://` does in two steps: Nix writes the binary-cache files, then they are
// uploaded with the builder's credentials; the pull is Nix substituting over the bucket's HTTP URL).
//   push: pushUrl's compression (method and level, read from the stack's pushUrl output) vs Nix's default xz,
//         time ratio and size ratio, and a sweep of zstd levels against xz in the same runs, which names the
//         level that keeps pushes ≥ 5× faster than xz with NARs ≤ 1.15× xz's (issue 14)
//   pull: `nix copy --from <substituterUrl>` into an empty store, pushUrl's compression vs xz, and vs raw
//         parallel GETs of the same files
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { netrcLine } from "../lib/hosts/privateModules";
import { parseS3StoreUrl } from "../lib/s3/pushTarget";
import { s3Client } from "../providers/minioClients";
import { MinioServer } from "../harness/minio";
import { nixEnv } from "../harness/nix";
import { startProxyProcess } from "../harness/proxy";
import { TestStack } from "../harness/stack";
import { requireTool } from "../harness/toolchain";
import { fmt, median, mib, report, timed } from "./measure";

/** The zstd levels the push sweeps by default (--zstd-levels): zstd's fast end up to the last level that keeps
 *  pushes well under xz's time; 15 and above take about as long as xz's single thread for little smaller NARs
 *  (docs/performance.md), and would double the bench's time. */
export const DEFAULT_ZSTD_LEVELS = [1, 3, 6, 9, 12] as const;

/** What issue 14 asks of pushUrl's compression, relative to Nix's default xz; a level that saves less than
 *  `minSaving` of the size over a faster one is not worth its time. */
export const PUSH_GOAL = { minSpeedup: 5, maxSizeRatio: 1.15, minSaving: 0.01 } as const;

export interface NixBenchOptions {
  runs: number;
  closureMb: number;
  zstdLevels: number[];
  only: Set<string>;
}

/** A binary cache store compression: Nix's `compression` and `compression-level` store settings. */
interface Compression {
  method: string;
  /** undefined: the method's default (Nix's -1). */
  level?: number;
}

const compressionName = (c: Compression) => (c.level === undefined ? c.method : `${c.method}-${c.level}`);
const compressionQuery = (c: Compression) => `compression=${c.method}${c.level === undefined ? "" : `&compression-level=${c.level}`}`;
const sameCompression = (a: Compression, b: Compression) => a.method === b.method && a.level === b.level;

/** The compression a store URL asks for, read as Nix reads it. */
function compressionOf(storeUrl: string): Compression {
  const u = parseS3StoreUrl(storeUrl);
  const level = u.params["compression-level"];
  return { method: u.compression, level: level === undefined || level === "-1" ? undefined : Number(level) };
}

/** A fresh simulated host under `scratch`. */
const hostEnv = (scratch: string) => nixEnv(fs.mkdtempSync(path.join(scratch, "home-")));

/** A closure of four ~closureMb/4 parts cut from a tar of /usr (real binaries and text) and a top path
 *  that references them all. */
function closureExpression(closureMb: number): string {
  const partMb = Math.max(1, Math.round(closureMb / 4));
  return `
let
  part = i: derivation {
    name = "bench-part-\${toString i}"; system = "x86_64-linux"; builder = "/bin/sh";
    args = [ "-c" "/usr/bin/tar cf - /usr/lib/x86_64-linux-gnu /usr/share 2>/dev/null | /usr/bin/head -c $(( ${partMb} * 1048576 * (\${toString i} + 1) )) | /usr/bin/tail -c ${partMb}M > $out" ];
  };
  parts = map part [ 0 1 2 3 ];
in derivation {
  name = "bench-closure"; system = "x86_64-linux"; builder = "/bin/sh";
  args = [ "-c" "echo \${toString parts} > $out" ];
}`;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

const sizeOf = (dir: string) => filesUnder(dir).reduce((n, f) => n + fs.statSync(f).size, 0);

/** Uploads a file:// binary cache directory as the builder, 8 in parallel (nix-cache-info is not touched). */
async function upload(dir: string, endpoint: string, accessKey: string, secretKey: string): Promise<void> {
  const s3 = s3Client({ endpoint, region: "us-east-1" }, { accessKey, secretKey });
  const files = filesUnder(dir).filter((f) => path.basename(f) !== "nix-cache-info");
  // NARs first, narinfos last: a client never sees a narinfo whose NAR is not there yet.
  files.sort((a, b) => Number(a.endsWith(".narinfo")) - Number(b.endsWith(".narinfo")));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < files.length) {
        const f = files[next++];
        await s3.fPutObject("nix-cache", path.relative(dir, f), f, {});
      }
    }),
  );
}

async function emptyCache(minio: MinioServer): Promise<void> {
  const s3 = s3Client({ endpoint: minio.endpoint, region: "us-east-1" }, { accessKey: minio.rootUser, secretKey: minio.rootPassword });
  const keys: string[] = [];
  for await (const o of s3.listObjectsV2("nix-cache", "", true)) {
    if (o.name && o.name !== "nix-cache-info") keys.push(o.name);
  }
  if (keys.length) await s3.removeObjects("nix-cache", keys);
}

/** What the caller may compare across runNixBench calls: the pull times with pushUrl's compression. */
export interface NixBenchResult {
  pullSeconds?: number[];
}

export async function runNixBench(t: TestStack, minio: MinioServer, opts: NixBenchOptions): Promise<NixBenchResult> {
  const nix = requireTool("nix", "install Nix (Debian: apt-get install nix-bin), or run `bash toolchain/toolchain.sh --nix`");
  const outputs = await t.stack.outputs();
  const out = (k: string) => String(outputs[k].value);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-bench-"));
  try {
    const env = hostEnv(scratch);
    const store = path.join(scratch, "store-builder");
    const exprFile = path.join(scratch, "closure.nix");
    fs.writeFileSync(exprFile, closureExpression(opts.closureMb));
    const top = execFileSync("nix-build", ["--store", store, "--no-out-link", exprFile], {
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
    const keyFile = path.join(scratch, "secret.key");
    fs.writeFileSync(keyFile, out("secretKey"), { mode: 0o600 });
    execFileSync(nix, ["store", "sign", "--store", store, "--key-file", keyFile, "--recursive", top], { env });
    const narSize = Number(
      JSON.parse(execFileSync(nix, ["path-info", "--store", store, "--json", "--closure-size", top], { env, encoding: "utf8" }))[0].closureSize,
    );
    console.log(`closure: ${(narSize / 2 ** 20).toFixed(0)} MiB in 5 store paths`);

    const push = async (c: Compression) => {
      const dir = fs.mkdtempSync(path.join(scratch, `push-${compressionName(c)}-`));
      const started = process.hrtime.bigint();
      await timed(nix, ["copy", "--store", store, "--to", `file://${dir}?${compressionQuery(c)}`, top], env);
      await upload(dir, minio.endpoint, out("builderAccessKey"), out("builderSecretKey"));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      return { seconds, bytes: sizeOf(dir), dir };
    };

    // pushUrl's compression, as the deployed stack says it, and the sweep around it.
    const ours = compressionOf(out("pushUrl"));
    const xz: Compression = { method: "xz" };
    const sweep: Compression[] = opts.zstdLevels.map((level) => ({ method: "zstd", level }));
    if (!sweep.some((c) => sameCompression(c, ours))) sweep.push(ours);
    // The local binary cache directories of the last push of xz and of ours, which the pull serves.
    const kept = new Map<string, string>();
    const keep = (c: Compression, dir: string) => {
      const name = compressionName(c);
      const old = kept.get(name);
      if (old) fs.rmSync(old, { recursive: true, force: true });
      kept.set(name, dir);
    };
    if (opts.only.has("push")) {
      const times = new Map<string, number[]>(sweep.concat(xz).map((c) => [compressionName(c), []]));
      const sizes = new Map<string, number>();
      // Each run pushes xz, then every level, into an emptied cache: the machine's drift hits them alike.
      for (let i = 0; i < opts.runs; i++) {
        for (const c of [xz, ...sweep]) {
          await emptyCache(minio);
          const r = await push(c);
          times.get(compressionName(c))!.push(r.seconds);
          sizes.set(compressionName(c), r.bytes);
          if (sameCompression(c, xz) || sameCompression(c, ours)) keep(c, r.dir);
          else fs.rmSync(r.dir, { recursive: true, force: true });
        }
      }
      const xzTime = median(times.get("xz")!);
      const xzBytes = sizes.get("xz")!;
      const name = compressionName(ours);
      report(`push (nix copy + upload, pushUrl's ${name} vs Nix's default xz)`, name, times.get(name)!, "xz", times.get("xz")!);
      console.log(`push size: ${name} ${mib(sizes.get(name)!)} | xz ${mib(xzBytes)} | ratio ${(sizes.get(name)! / xzBytes).toFixed(2)}`);
      console.log(`push sweep (zstd compression-level, each against xz ${fmt(xzTime)} and ${mib(xzBytes)} in the same runs):`);
      const fast: { c: Compression; seconds: number; bytes: number; fits: boolean }[] = [];
      for (const c of sweep) {
        const t = median(times.get(compressionName(c))!);
        const bytes = sizes.get(compressionName(c))!;
        const fits = bytes / xzBytes <= PUSH_GOAL.maxSizeRatio;
        if (xzTime / t >= PUSH_GOAL.minSpeedup) fast.push({ c, seconds: t, bytes, fits });
        const columns = [
          `  ${compressionName(c).padEnd(8)} push ${fmt(t).padStart(8)}`,
          `size ${mib(bytes).padStart(10)}`,
          `time ratio ${(t / xzTime).toFixed(3)} (${(xzTime / t).toFixed(1)}× faster)`,
          `size ratio ${(bytes / xzBytes).toFixed(2)}`,
        ];
        console.log([...columns, ...(sameCompression(c, ours) ? ["pushUrl's"] : [])].join(" | "));
      }
      // Of the levels fast enough (and small enough, if any is), the fastest whose NARs are within minSaving of
      // the smallest: every host downloads them for as long as they are cached, but a level that barely shrinks
      // them is not worth its time.
      const fits = fast.some((f) => f.fits);
      const candidates = fits ? fast.filter((f) => f.fits) : fast;
      const smallest = Math.min(...candidates.map((f) => f.bytes));
      const pick = candidates.sort((a, b) => a.seconds - b.seconds).find((f) => f.bytes <= smallest * (1 + PUSH_GOAL.minSaving));
      const speed = `≥ ${PUSH_GOAL.minSpeedup}× faster than xz`;
      const size = `size ≤ ${PUSH_GOAL.maxSizeRatio}× xz's`;
      const among = fits ? `levels ${speed} with ${size}` : `levels ${speed} (none has ${size})`;
      console.log(
        pick
          ? `push pick: ${compressionName(pick.c)}, the fastest of the ${among} ` +
              `whose NARs are within ${PUSH_GOAL.minSaving * 100} % of their smallest (${mib(smallest)})`
          : `push pick: none of the levels swept is ${speed}`,
      );
    }
    if (opts.only.has("pull")) {
      // Without the push figures, one untimed push of each fills the directories the pull serves.
      for (const c of [xz, ours]) if (!kept.has(compressionName(c))) keep(c, (await push(c)).dir);
      const oursDir = kept.get(compressionName(ours))!;
      const files = filesUnder(oursDir).map((f) => path.relative(oursDir, f));
      const base = out("substituterUrl");
      const pulls = new Map<string, number[]>([
        [compressionName(ours), []],
        ["xz", []],
      ]);
      const raw: number[] = [];
      /** `nix copy --from` the cache into an empty store, on a fresh host (no narinfo cache). */
      const pull = async (from = base, extra: string[] = []) => {
        const target = fs.mkdtempSync(path.join(scratch, "store-client-"));
        const s = await timed(nix, ["copy", "--from", from, "--to", target, "--option", "trusted-public-keys", out("publicKey"), ...extra, top], hostEnv(scratch));
        fs.rmSync(target, { recursive: true, force: true });
        return s.seconds;
      };
      // A private cache's pull: the same bucket through the read proxy (its host script), with a host's netrc line.
      // The proxy signs as the builder here: only its read rights matter for the figure.
      const viaProxy: number[] = [];
      const token = crypto.randomBytes(20).toString("hex");
      const proxy = opts.only.has("proxy")
        ? await startProxyProcess({
            dir: fs.mkdtempSync(path.join(scratch, "proxy-")),
            minio,
            bucket: parseS3StoreUrl(out("pushUrl")).bucket,
            reader: { accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") },
            tokens: { bench: token },
          })
        : undefined;
      const netrc = path.join(scratch, "netrc");
      if (proxy) fs.writeFileSync(netrc, `${netrcLine(proxy.url, "bench", token)}\n`, { mode: 0o600 });
      for (let i = 0; i < opts.runs; i++) {
        // xz, then ours, each alone in the bucket (same store paths, so the same narinfo names).
        for (const c of [xz, ours]) {
          await emptyCache(minio);
          await upload(kept.get(compressionName(c))!, minio.endpoint, out("builderAccessKey"), out("builderSecretKey"));
          pulls.get(compressionName(c))!.push(await pull());
        }
        if (proxy) viaProxy.push(await pull(proxy.url, ["--option", "netrc-file", netrc]));
        const started = process.hrtime.bigint();
        let next = 0;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (next < files.length) {
              const res = await fetch(`${base}/${files[next++]}`);
              if (!res.ok) throw new Error(`GET failed: ${res.status}`);
              await res.arrayBuffer();
            }
          }),
        );
        raw.push(Number(process.hrtime.bigint() - started) / 1e9);
      }
      const name = compressionName(ours);
      report(`pull (nix copy --from the cache into an empty store, pushUrl's ${name} vs xz)`, name, pulls.get(name)!, "xz", pulls.get("xz")!);
      report(`pull (nix copy --from the cache into an empty store vs raw GETs of the same ${name} files)`, "substitute", pulls.get(name)!, "raw GETs", raw);
      if (proxy) {
        await proxy.stop();
        report(`pull through the read proxy (a private cache; nix copy --from, netrc token) vs anonymous from MinIO, ${name}`, "proxy", viaProxy, "MinIO", pulls.get(name)!);
      }
      return { pullSeconds: pulls.get(name)! };
    }
    return {};
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
