// The read proxy's test and bench set-up (issue 21): a private bucket with a reader user as the stack makes it
// (GetObject on its objects, GetBucketLocation and ListBucket on the bucket, nothing else; no anonymous policy),
// and the proxy as its host runs it: lib/proxy/bundle.ts's script written to a directory outside the project and
// run by plain `node` with a credentials file and a tokens file, its log lines collected, its memory read from
// /proc. Used by tests/integration/proxy.test.ts, tests/e2e/proxyNix.test.ts and bench/proxyBench.ts.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { awsCredentials } from "../lib/hosts/hostConfig";
import { proxyScriptText } from "../lib/proxy/bundle";
import { tokenHashesText } from "../lib/proxy/tokens";
import { S3Rest } from "../lib/s3/client";
import { minioAdmin } from "../providers/minioClients";
import { MinioServer } from "./minio";

export interface ReaderKeys {
  accessKey: string;
  secretKey: string;
}

/** The reader's canned policy as the stack writes it (lib/minio/policies.ts readerPolicy on the private-cache branch). */
export function readerPolicyDocument(bucket: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: ["s3:GetBucketLocation", "s3:ListBucket"], Resource: [`arn:aws:s3:::${bucket}`] },
      { Effect: "Allow", Action: ["s3:GetObject"], Resource: [`arn:aws:s3:::${bucket}/*`] },
    ],
  });
}

/** A root S3 client of `bucket` on `minio`. */
export function rootClient(minio: MinioServer, bucket: string): S3Rest {
  return new S3Rest({
    endpoint: minio.endpoint,
    region: "us-east-1",
    bucket,
    accessKey: minio.rootUser,
    secretKey: minio.rootPassword,
    timeoutMs: 120_000,
    ...(minio.tls ? { ca: minio.tls.ca.certPem } : {}),
  });
}

/** Creates `bucket` (no bucket policy: private) and the reader user `user` with readerPolicyDocument; its keys. */
export async function makePrivateBucket(minio: MinioServer, bucket: string, user = `${bucket}-reader`): Promise<ReaderKeys> {
  const root = rootClient(minio, bucket);
  try {
    await root.makeBucket();
  } finally {
    root.close();
  }
  const target = { endpoint: minio.endpoint, region: "us-east-1", ...(minio.tls ? { ca: minio.tls.ca.certPem } : {}) };
  const admin = { accessKey: minio.rootUser, secretKey: minio.rootPassword };
  const secretKey = crypto.randomBytes(20).toString("hex");
  await minioAdmin.addUser(target, admin, user, secretKey);
  await minioAdmin.putPolicy(target, admin, `${user}-read`, readerPolicyDocument(bucket));
  await minioAdmin.attachPolicy(target, admin, user, `${user}-read`);
  return { accessKey: user, secretKey };
}

/** A per-host token like the stack's: 40 random characters. */
export const newToken = (): string => crypto.randomBytes(30).toString("base64url").slice(0, 40);

export interface ProxyProcessOptions {
  /** Where the script and its files go (outside the project: node must find no node_modules). */
  dir: string;
  minio: MinioServer;
  bucket: string;
  reader: ReaderKeys;
  /** host -> token; the tokens file gets their hashes. */
  tokens: Record<string, string>;
  /** Serve https with this certificate and key. */
  tls?: { certPem: string; keyPem: string };
  /** Default 127.0.0.1:0 (any free port; the URL comes from the start-up line). */
  listen?: string;
  /** More environment (it gets PATH and HOME only). */
  env?: Record<string, string>;
  /** node options before the script (e.g. --max-old-space-size). */
  nodeArgs?: string[];
}

export interface ProxyProcess {
  url: string;
  pid: number;
  /** Every line it printed so far (stdout and stderr). */
  lines: string[];
  tokensFile: string;
  /** Resolves with the first line from `from` on (an index into `lines`) that matches. */
  waitForLine(pattern: RegExp, from?: number, timeoutMs?: number): Promise<string>;
  /** VmRSS and VmHWM (peak) from /proc/PID/status, in KiB. */
  memory(): { rssKiB: number; peakKiB: number };
  /** Writes a new tokens file and sends SIGHUP; resolves when the proxy says it reloaded. */
  reload(tokens: Record<string, string>): Promise<string>;
  /** SIGTERM (unless it exited already); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Resolves with the exit code once it exits (sends nothing). */
  exited: Promise<number | null>;
}

/** `node nix-cache-proxy.js --listen … --endpoint … --tokens-file …` as the proxy's NixOS module runs it. */
export async function startProxyProcess(opts: ProxyProcessOptions): Promise<ProxyProcess> {
  fs.mkdirSync(opts.dir, { recursive: true });
  const script = path.join(opts.dir, "nix-cache-proxy.js");
  fs.writeFileSync(script, proxyScriptText());
  const credentials = path.join(opts.dir, "nix-cache-reader-credentials");
  fs.writeFileSync(credentials, awsCredentials(opts.reader.accessKey, opts.reader.accessKey, opts.reader.secretKey), { mode: 0o600 });
  const tokensFile = path.join(opts.dir, "nix-cache-proxy-tokens");
  fs.writeFileSync(tokensFile, tokenHashesText(opts.tokens), { mode: 0o600 });
  const args = [
    script,
    "--listen", opts.listen ?? "127.0.0.1:0",
    "--endpoint", opts.minio.endpoint,
    "--region", "us-east-1",
    "--bucket", opts.bucket,
    "--credentials-file", credentials,
    "--profile", opts.reader.accessKey,
    "--tokens-file", tokensFile,
  ];
  if (opts.minio.tls) {
    const ca = path.join(opts.dir, "minio-ca.crt");
    fs.writeFileSync(ca, opts.minio.tls.ca.certPem);
    args.push("--ca-file", ca);
  }
  if (opts.tls) {
    const cert = path.join(opts.dir, "proxy.crt");
    const key = path.join(opts.dir, "proxy.key");
    fs.writeFileSync(cert, opts.tls.certPem);
    fs.writeFileSync(key, opts.tls.keyPem, { mode: 0o600 });
    args.push("--tls-cert", cert, "--tls-key", key);
  }
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...args], { cwd: opts.dir, env: { PATH: process.env.PATH, HOME: opts.dir, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  process.once("exit", () => child.kill("SIGKILL"));
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = { out: "", err: "" };
  const take = (which: "out" | "err") => (b: Buffer) => {
    const text = partial[which] + b.toString("utf8");
    const parts = text.split("\n");
    partial = { ...partial, [which]: parts.pop() ?? "" };
    lines.push(...parts);
    for (const w of waiters) w();
  };
  child.stdout?.on("data", take("out"));
  child.stderr?.on("data", take("err"));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => {
    for (const w of waiters) w();
    resolve(code);
  }));

  const waitForLine = (pattern: RegExp, from = 0, timeoutMs = 15_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = lines.slice(from).find((l) => pattern.test(l));
        if (hit !== undefined) {
          done();
          resolve(hit);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`the proxy exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}: ${lines.join("\n")}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`the proxy printed no ${pattern} within ${timeoutMs} ms: ${lines.join("\n")}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const started = await waitForLine(/^nix-cache-proxy: serving /);
  const url = /at (https?:\/\/\S+) for/.exec(started)?.[1];
  if (!url || child.pid === undefined) throw new Error(`unexpected start-up line: ${started}`);
  const pid = child.pid;
  return {
    url,
    pid,
    lines,
    tokensFile,
    waitForLine,
    memory: () => {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? NaN);
      return { rssKiB: kib("VmRSS"), peakKiB: kib("VmHWM") };
    },
    reload: async (tokens) => {
      fs.writeFileSync(tokensFile, tokenHashesText(tokens), { mode: 0o600 });
      const from = lines.length;
      child.kill("SIGHUP");
      return waitForLine(/SIGHUP: tokens /, from);
    },
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
