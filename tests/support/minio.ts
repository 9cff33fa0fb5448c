// A private MinIO server per test file: 127.0.0.1 on a free port, its own data dir and root credentials.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { requireTool } from "./toolchain";

export interface MinioServer {
  endpoint: string;
  port: number;
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

async function waitLive(endpoint: string, proc: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      throw new Error(`minio exited with ${proc.exitCode}: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
    }
    try {
      const res = await fetch(`${endpoint}/minio/health/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`minio at ${endpoint} was not ready within 60 s: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
}

export async function startMinio(baseDir?: string): Promise<MinioServer> {
  const minio = requireTool("minio");
  const root = baseDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-minio-"));
  const dataDir = path.join(root, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  const port = await freePort();
  const consolePort = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const rootUser = "admin";
  const rootPassword = crypto.randomBytes(18).toString("base64url");
  const logFile = path.join(root, "minio.log");
  let proc: ChildProcess | undefined;
  // If the test process ends without destroy() (a crash, a timeout), take the server down with it: a
  // leftover server keeps jest from exiting.
  process.once("exit", () => proc?.kill("SIGKILL"));

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
    const started = spawn(minio, ["server", dataDir, "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${consolePort}`], {
      env: { ...process.env, MINIO_ROOT_USER: rootUser, MINIO_ROOT_PASSWORD: rootPassword, MINIO_BROWSER: "off", MINIO_UPDATE: "off", HOME: root },
      stdio: ["ignore", log, log],
    });
    proc = started;
    fs.closeSync(log);
    await waitLive(endpoint, started, logFile);
  };
  await launch();
  return {
    endpoint,
    port,
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
