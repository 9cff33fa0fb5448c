// The one MinIO starter of the project, used by the tests, the bench and the demo. By default a private server:
// 127.0.0.1 on a free port, its own data dir and root credentials, ended with the process that started it;
// optionally serving https with a certificate from a throwaway CA (harness/localCa.ts), as a homelab's MinIO does.
// The demo asks for a fixed port, its own credentials and certificates, and a server that outlives it.
// With `nodes: N` it starts MinIO's distributed, erasure-coded mode instead: N processes on 127.0.0.1, one drive
// each, that form one cluster (see ../shared/facts/minio-distributed.md); the server's endpoint is node 1's.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { LocalCa, makeCa, makeServerCert, Pem, writeMinioCerts } from "./localCa";
import * as Minio from "minio";
import { httpsAgentFor } from "../providers/minioClients";
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
  /** The processes of a cluster (`nodes` option), node 1 first; one entry for a single server. */
  nodes: MinioNode[];
}

/** One server process of a cluster. */
export interface MinioNode {
  /** 1-based. */
  index: number;
  /** This node's S3 endpoint (same scheme and host as the server's). */
  endpoint: string;
  port: number;
  consolePort: number;
  /** This node's drive (cluster) or data dir (single server). */
  dataDir: string;
  logFile: string;
  /** The process id while it runs. */
  pid(): number | undefined;
  /** SIGKILLs this node (a crash: no shutdown), keeping its drive. */
  kill(): Promise<void>;
  /** Starts this node again with the same command line; resolves once it sees its cluster healthy and a
   *  write through it succeeds (needs the write quorum, so with too many nodes down it rejects). */
  restart(): Promise<void>;
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

/** Waits until GET `url` answers 200, failing early when the process exits. */
async function waitStatus(url: string, proc: ChildProcess, logFile: string, ca: string | undefined, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`minio exited with ${proc.exitCode ?? proc.signalCode}: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
    }
    if ((await healthStatus(url, ca)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer 200 within ${seconds} s: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
}

/** A root client of the start-up probes: no SDK retries (their loops retry, and the SDK prints a line per 503). */
function probeClient(endpoint: string, root: { user: string; password: string }, transportAgent?: https.Agent): Minio.Client {
  const url = new URL(endpoint);
  return new Minio.Client({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: url.protocol === "https:",
    accessKey: root.user,
    secretKey: root.password,
    region: "us-east-1",
    pathStyle: true,
    retryOptions: { disableRetry: true },
    ...(transportAgent ? { transportAgent } : {}),
  });
}

/**
 * Waits until S3 requests are served: /minio/health/ready says 200 while, on a busy machine, S3 calls can still
 * answer 503 XMinioServerNotInitialized for a moment (seen when two test runs shared the 2 cores). ListBuckets as
 * root is the probe: it needs the initialized server and changes nothing.
 */
async function s3Ready(endpoint: string, root: { user: string; password: string }, seconds: number): Promise<void> {
  // As for the health check: a test may serve an expired certificate or one for another name on purpose.
  const client = probeClient(endpoint, root, endpoint.startsWith("https:") ? new https.Agent({ rejectUnauthorized: false }) : undefined);
  const deadline = Date.now() + seconds * 1000;
  let last = "";
  while (Date.now() < deadline) {
    try {
      await bounded(client.listBuckets(), 5_000);
      return;
    } catch (err) {
      last = (err as { code?: string }).code ?? String(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`MinIO at ${endpoint}: S3 requests still fail after ${seconds} s (${last})`);
}

/** The bucket the cluster's write probe uses; removed again once every node took a write. */
export const PROBE_BUCKET = "minio-start-probe";

/** Rejects after `ms`: some MinIO calls hang without a write quorum (bucket create, DELETE). */
function bounded<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error(`no answer in ${ms} ms`), { code: "ETIMEDOUT" })), ms)));
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A real write through each of `endpoints` (a cluster's nodes): /minio/health/cluster says 200 before every node
 * reconnected to its peers, and until then writes through it answer 503 SlowDownWrite (up to ~17 s after a
 * restart; facts/minio-distributed.md). Retries until each took one, then removes the probe again.
 */
async function writeProbe(endpoints: string[], root: { user: string; password: string }, ca: string | undefined, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  const clients = endpoints.map((endpoint) => probeClient(endpoint, root, ca && endpoint.startsWith("https:") ? httpsAgentFor(ca) : undefined));
  const retry = async (what: string, work: () => Promise<unknown>, ok: (code: string) => boolean = () => false) => {
    let last = "";
    while (Date.now() < deadline) {
      try {
        await bounded(work(), 5_000);
        return;
      } catch (err) {
        last = (err as { code?: string }).code ?? String(err);
        if (ok(last)) return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`MinIO cluster: ${what} still fails after ${seconds} s (${last})`);
  };
  await retry("creating the probe bucket", () => clients[0].makeBucket(PROBE_BUCKET, "us-east-1"), (c) => c === "BucketAlreadyOwnedByYou" || c === "BucketAlreadyExists");
  for (const [i, client] of clients.entries()) {
    await retry(`a write through ${endpoints[i]}`, () => client.putObject(PROBE_BUCKET, `probe-${i}`, Buffer.from("x")));
  }
  // Best effort: a leftover probe bucket harms nothing.
  for (const [i, client] of clients.entries()) await bounded(client.removeObject(PROBE_BUCKET, `probe-${i}`), 5_000).catch(() => undefined);
  await bounded(clients[0].removeBucket(PROBE_BUCKET), 5_000).catch(() => undefined);
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
  /**
   * A cluster of this many server processes on 127.0.0.1 (MinIO's distributed mode, one erasure set; 2 to 16):
   * 4 gives EC 2+2, which keeps writing with one node down and reading with two. Node i (1-based) listens on
   * `port + 2(i-1)` with its console on the next port when `port` is given (node 1 on `port`, `consolePort`),
   * else on free ports; its drive is `dataDir/nodeI`, its log `logFile` with `-nodeI` before `.log`. With
   * `detached`, the pid file holds one pid per line, node 1 first. Default: one server.
   */
  nodes?: number;
}

/** Where node `i` (1-based) of a cluster logs. */
export const nodeLogFile = (logFile: string, i: number) => logFile.replace(/(\.log)?$/, `-node${i}$1`);

export async function startMinio(options: StartOptions = {}): Promise<MinioServer> {
  const minio = requireTool("minio");
  const root = options.baseDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-minio-"));
  const dataDir = options.dataDir ?? path.join(root, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  const cluster = options.nodes !== undefined;
  const count = options.nodes ?? 1;
  if (!Number.isInteger(count) || (cluster && (count < 2 || count > 16))) throw new Error(`startMinio: nodes ${count} (allowed: 2 to 16)`);
  const used = new Set<number>();
  const pick = async (given: number | undefined) => {
    let port = given ?? (await freePort());
    while (given === undefined && used.has(port)) port = await freePort();
    used.add(port);
    return port;
  };
  const ports: { port: number; consolePort: number }[] = [];
  for (let i = 0; i < count; i++) {
    const base = options.port === undefined ? undefined : options.port + 2 * i;
    const port = await pick(base);
    const consolePort = await pick(i === 0 ? options.consolePort : base === undefined ? undefined : base + 1);
    ports.push({ port, consolePort });
  }
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
  const endpointOf = (port: number) => (tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`);
  const rootUser = options.root?.user ?? "admin";
  // Hex: a password that starts with "-" would read as an option on a command line (mc alias set took one for a flag).
  const rootPassword = options.root?.password ?? crypto.randomBytes(18).toString("hex");
  const logFile = options.logFile ?? path.join(root, "minio.log");
  const detached = options.detached;
  const ca = tls?.ca.certPem;
  // The nodes' drives: the same list, in the same order, on every node's command line; the paths must differ.
  const drives = ports.map((_, i) => (cluster ? path.join(dataDir, `node${i + 1}`) : dataDir));
  const driveArgs = cluster ? ports.map(({ port }, i) => `${tls ? "https" : "http"}://127.0.0.1:${port}${drives[i]}`) : [dataDir];
  const procs: (ChildProcess | undefined)[] = ports.map(() => undefined);
  // If the test process ends without destroy() (a crash, a timeout), take the servers down with it: a
  // leftover server keeps jest from exiting. A detached server is meant to stay.
  if (!detached) process.once("exit", () => procs.forEach((p) => p?.kill("SIGKILL")));

  const running = (p: ChildProcess | undefined): p is ChildProcess => p !== undefined && p.exitCode === null && p.signalCode === null;
  const stopNode = async (i: number, signal: NodeJS.Signals) => {
    const proc = procs[i];
    if (!running(proc)) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (running(proc)) {
      proc.kill("SIGKILL");
      await exited;
    }
  };
  const stop = async () => {
    await Promise.all(procs.map((_, i) => stopNode(i, "SIGTERM")));
  };
  const writePids = () => {
    if (detached) fs.writeFileSync(detached.pidFile, procs.map((p) => `${p?.pid ?? ""}\n`).join(""));
  };
  const logOf = (i: number) => (cluster ? nodeLogFile(logFile, i + 1) : logFile);
  const spawnNode = (i: number) => {
    const { port, consolePort } = ports[i];
    if (cluster) fs.mkdirSync(drives[i], { recursive: true });
    const log = fs.openSync(logOf(i), "a");
    const certArgs = tls ? ["--certs-dir", tls.certsDir] : [];
    // A cluster needs MINIO_CI_CD (else drives on the root filesystem are refused) and, in a container,
    // _MINIO_SERVER_LOCAL naming the node's own address (else 127.0.0.1 endpoints wait forever).
    const clusterEnv = cluster ? { MINIO_CI_CD: "1", _MINIO_SERVER_LOCAL: `127.0.0.1:${port}` } : {};
    const started = spawn(minio, ["server", ...driveArgs, "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${consolePort}`, ...certArgs], {
      env: { ...process.env, MINIO_ROOT_USER: rootUser, MINIO_ROOT_PASSWORD: rootPassword, MINIO_BROWSER: "off", MINIO_UPDATE: "off", HOME: root, ...clusterEnv },
      stdio: ["ignore", log, log],
      detached: detached !== undefined,
    });
    procs[i] = started;
    fs.closeSync(log);
    if (detached) started.unref();
    return started;
  };
  const rootCreds = { user: rootUser, password: rootPassword };
  const launch = async () => {
    // Never two servers for one test: a restart of a running server stops it first.
    await stop();
    const started = ports.map((_, i) => spawnNode(i));
    writePids();
    if (!cluster) {
      await waitStatus(`${endpointOf(ports[0].port)}/minio/health/ready`, started[0], logFile, ca, 60);
      return s3Ready(endpointOf(ports[0].port), rootCreds, 60);
    }
    // A new cluster formats its drives only once every node answers; then each node reports the cluster
    // healthy, and a write through each proves it reconnected to its peers.
    await Promise.all(started.map((proc, i) => waitStatus(`${endpointOf(ports[i].port)}/minio/health/cluster`, proc, logOf(i), ca, 90)));
    await writeProbe(ports.map(({ port }) => endpointOf(port)), rootCreds, ca, 60);
  };
  const restartNode = async (i: number) => {
    if (!cluster) return launch();
    await stopNode(i, "SIGTERM");
    const proc = spawnNode(i);
    writePids();
    await waitStatus(`${endpointOf(ports[i].port)}/minio/health/cluster`, proc, logOf(i), ca, 60);
    await writeProbe([endpointOf(ports[i].port)], rootCreds, ca, 45);
  };
  await launch();
  const nodes: MinioNode[] = ports.map(({ port, consolePort }, i) => ({
    index: i + 1,
    endpoint: endpointOf(port),
    port,
    consolePort,
    dataDir: drives[i],
    logFile: logOf(i),
    pid: () => (running(procs[i]) ? procs[i]?.pid : undefined),
    kill: () => stopNode(i, "SIGKILL"),
    restart: () => restartNode(i),
  }));
  return {
    endpoint: endpointOf(ports[0].port),
    port: ports[0].port,
    tls,
    rootUser,
    rootPassword,
    dataDir,
    nodes,
    stop,
    restart: launch,
    destroy: async () => {
      await stop();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
