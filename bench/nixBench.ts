// Push and pull of a realistic closure with a real Nix (Debian's Nix 2.8, no S3 support compiled in, so the
// push is what `nix copy --to s3://` does in two steps: Nix writes the binary-cache files, then they are
// uploaded with the builder's credentials; the pull is Nix substituting over the bucket's HTTP URL).
//   push: pushUrl's compression vs Nix's default xz: time ratio and size ratio
//   pull: `nix copy --from <substituterUrl>` into an empty store vs raw parallel GETs of the same files
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { PUSH_COMPRESSION } from "../lib/hostConfig";
import { s3Client } from "../providers/minioClients";
import { MinioServer } from "../harness/minio";
import { nixEnv } from "../harness/nix";
import { TestStack } from "../harness/stack";
import { requireTool } from "../harness/toolchain";
import { report, timed } from "./measure";

export interface NixBenchOptions {
  runs: number;
  closureMb: number;
  only: Set<string>;
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

export async function runNixBench(t: TestStack, minio: MinioServer, opts: NixBenchOptions): Promise<void> {
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

    const push = async (compression: string) => {
      const dir = fs.mkdtempSync(path.join(scratch, `push-${compression}-`));
      const started = process.hrtime.bigint();
      await timed(nix, ["copy", "--store", store, "--to", `file://${dir}?compression=${compression}`, top], env);
      await upload(dir, minio.endpoint, out("builderAccessKey"), out("builderSecretKey"));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      return { seconds, bytes: sizeOf(dir), dir };
    };

    const chosen: number[] = [];
    const xz: number[] = [];
    let chosenBytes = 0;
    let xzBytes = 0;
    let lastDir = "";
    if (opts.only.has("push")) {
      for (let i = 0; i < opts.runs; i++) {
        await emptyCache(minio);
        const x = await push("xz");
        xz.push(x.seconds);
        xzBytes = x.bytes;
        fs.rmSync(x.dir, { recursive: true, force: true });
        await emptyCache(minio);
        const c = await push(PUSH_COMPRESSION);
        chosen.push(c.seconds);
        chosenBytes = c.bytes;
        if (lastDir) fs.rmSync(lastDir, { recursive: true, force: true });
        lastDir = c.dir;
      }
      report(`push (nix copy + upload, ${PUSH_COMPRESSION} vs Nix's default xz)`, PUSH_COMPRESSION, chosen, "xz", xz);
      console.log(`push size: ${PUSH_COMPRESSION} ${(chosenBytes / 2 ** 20).toFixed(1)} MiB | xz ${(xzBytes / 2 ** 20).toFixed(1)} MiB | ratio ${(chosenBytes / xzBytes).toFixed(2)}`);
    }
    if (opts.only.has("pull")) {
      if (!lastDir) {
        await emptyCache(minio);
        lastDir = (await push(PUSH_COMPRESSION)).dir;
      }
      const files = filesUnder(lastDir).map((f) => path.relative(lastDir, f));
      const base = out("substituterUrl");
      const substitute: number[] = [];
      const raw: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        const target = fs.mkdtempSync(path.join(scratch, "store-client-"));
        const pullEnv = hostEnv(scratch);
        const s = await timed(nix, ["copy", "--from", base, "--to", target, "--option", "trusted-public-keys", out("publicKey"), top], pullEnv);
        substitute.push(s.seconds);
        fs.rmSync(target, { recursive: true, force: true });
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
      report("pull (nix copy --from the cache into an empty store vs raw GETs of the same files)", "substitute", substitute, "raw GETs", raw);
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
