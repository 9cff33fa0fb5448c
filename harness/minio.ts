// The one MinIO starter of the project, used by the tests, the bench and the demo. By default a private server:
// 127.0.0.1 on a free port, its own data dir and root credentials, ended with the process that started it;
// optionally serving https with a certificate from a throwaway CA (lib/localCa.ts), as a homelab's MinIO does.
// The demo asks for a fixed port, its own credentials and certificates, and a server that outlives it.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { LocalCa, makeCa, makeServerCert, Pem, writeMinioCerts } from "../lib/localCa";
import { requireTool } from "./toolchain";

/** The names the test server's certificate holds: what https://localhost:PORT and https://127.0.0.1:PORT need. */
export const TLS_NAMES = { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] };

export interface MinioTls {
  /** The throwaway CA that signed the server's certificate. */
  ca: LocalCa;
  /** MinIO's --certs-dir (public.crt, private.key). */
  certsDir: string;
  /** Serves `server` (e.g. an expired certificate, or one for another name) from the next (re)start on. */
  useCertificate(server: Pem): void;
}

export interface MinioServer {
  /** http://127.0.0.1:PORT, or https://localhost:PORT when started with tls. */
  endpoint: string;
  port: number;
  /** Set when the server speaks https. */
  tls?: MinioTls;
  rootUser: string;
  rootPassword: string;
  dataDir: string;
  /** Stops the process (SIGTERM), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data dir. */
  restart(): Promise<void>;
  /** Stops it and deletes its data. */
  destroy(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The status of GET url, trusting `ca` for https; undefined when nothing answers. */
export function healthStatus(url: string, ca: string | undefined): Promise<number | undefined> {
  return new Promise((resolve) => {
    // The server's certificate may be expired or name another host on purpose: readiness does not judge it.
    const req = (url.startsWith("https:") ? https : http).get(url, { ca, rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

async function waitLive(endpoint: string, proc: ChildProcess, logFile: string, ca?: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      throw new Error(`minio exited with ${proc.exitCode}: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
    }
    if ((await healthStatus(`${endpoint}/minio/health/ready`, ca)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`minio at ${endpoint} was not ready within 60 s: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
}

export interface StartOptions {
  /** Where data, log (and certificates) go; default a new temp dir. */
  baseDir?: string;
  /** The data dir; default `baseDir/data`. */
  dataDir?: string;
  /** The server's log; default `baseDir/minio.log`. */
  logFile?: string;
  /** The S3 port on 127.0.0.1; default a free one. */
  port?: number;
  /** The console port on 127.0.0.1; default a free one. */
  consolePort?: number;
  /** Root credentials; default user `admin` with a random password. */
  root?: { user: string; password: string };
  /** https: `true` makes a new throwaway CA and a certificate for localhost and 127.0.0.1 (see TLS_NAMES);
   *  an existing CA and certs dir (public.crt, private.key) are served as they are. Default http. */
  tls?: boolean | { ca: LocalCa; certsDir: string };
  /** The server outlives this process (the demo): it runs in a session of its own and its pid goes to
   *  `pidFile`. Default: it is killed when this process exits. */
  detached?: { pidFile: string };
}

export async function startMinio(options: StartOptions = {}): Promise<MinioServer> {
  const minio = requireTool("minio");
  const root = options.baseDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-minio-"));
  const dataDir = options.dataDir ?? path.join(root, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  const port = options.port ?? (await freePort());
  const consolePort = options.consolePort ?? (await freePort());
  let tls: MinioTls | undefined;
  if (options.tls === true) {
    const ca = await makeCa({ commonName: "nix-cache test CA" });
    const certsDir = path.join(root, "certs");
    const useCertificate = (server: Pem) => writeMinioCerts(certsDir, server, ca);
    useCertificate(await makeServerCert(ca, TLS_NAMES));
    tls = { ca, certsDir, useCertificate };
  } else if (options.tls) {
    const { ca, certsDir } = options.tls;
    tls = { ca, certsDir, useCertificate: (server: Pem) => writeMinioCerts(certsDir, server, ca) };
  }
  // https by name: the name a homelab's certificate holds (an IP works too, see TLS_NAMES).
  const endpoint = tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
  const rootUser = options.root?.user ?? "admin";
  const rootPassword = options.root?.password ?? crypto.randomBytes(18).toString("base64url");
  const logFile = options.logFile ?? path.join(root, "minio.log");
  const detached = options.detached;
  let proc: ChildProcess | undefined;
  // If the test process ends without destroy() (a crash, a timeout), take the server down with it: a
  // leftover server keeps jest from exiting. A detached server is meant to stay.
  if (!detached) process.once("exit", () => proc?.kill("SIGKILL"));

  const stop = async () => {
    const running = proc;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((r) => running.once("exit", r));
    running.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (running.exitCode === null && running.signalCode === null) running.kill("SIGKILL");
  };
  const launch = async () => {
    // Never two servers for one test: a restart of a running server stops it first.
    await stop();
    const log = fs.openSync(logFile, "a");
    const certArgs = tls ? ["--certs-dir", tls.certsDir] : [];
    const started = spawn(minio, ["server", dataDir, "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${consolePort}`, ...certArgs], {
      env: { ...process.env, MINIO_ROOT_USER: rootUser, MINIO_ROOT_PASSWORD: rootPassword, MINIO_BROWSER: "off", MINIO_UPDATE: "off", HOME: root },
      stdio: ["ignore", log, log],
      detached: detached !== undefined,
    });
    proc = started;
    fs.closeSync(log);
    if (detached) {
      fs.writeFileSync(detached.pidFile, `${started.pid}\n`);
      started.unref();
    }
    await waitLive(endpoint, started, logFile, tls?.ca.certPem);
  };
  await launch();
  return {
    endpoint,
    port,
    tls,
    rootUser,
    rootPassword,
    dataDir,
    stop,
    restart: launch,
    destroy: async () => {
      await stop();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
