// The embedded local default (`npm run demo`): a MinIO on 127.0.0.1 with its data and generated root credentials
// under .local/, a file:// Pulumi backend there, and stack `local` of this project deployed on it. MinIO is
// started by harness/minio.ts and the stack opened by harness/stack.ts, as in the tests and the bench.
//   demo.ts up [--tls]        start MinIO (if not running), pulumi up, print the outputs
//   demo.ts down              stop the MinIO servers (http and https; their data stays under .local/)
//   demo.ts pulumi [--tls] …  run any pulumi command on the demo stack (e.g. stack output --show-secrets)
//   demo.ts env               print `export` lines that point pulumi and the project's commands (verify,
//                             host-config, resign) at the demo's backend: eval "$(npm run -s demo:env)"
// --tls (or NIX_CACHE_DEMO_TLS=1) is the HTTPS demo, a world of its own beside the http one: a throwaway CA and
// MinIO's certificate in .local/tls (scripts/demoTls.ts), MinIO on https://localhost:9443 with its data in
// .local/tls/minio-data, stack `local-tls` with nix-cache:caCertificate set to that CA. It shares the backend,
// passphrase and MinIO credentials with the http demo, and never touches the http demo's resources.
// --nodes N (2 to 16, e.g. 4) is the distributed demo, a third world: N MinIO processes on 127.0.0.1 forming one
// erasure-coded cluster (harness/minio.ts `nodes`), node i on port 9100 + 2(i-1) with its console on the next port,
// their drives in .local/cluster/minio-data/nodeI, their pids in .local/cluster/minio.pid, stack `local-cluster`
// on node 1. Same backend, passphrase and MinIO credentials; http only.
// NIX_CACHE_DEMO_DIR moves .local/ elsewhere and NIX_CACHE_DEMO_STACK renames stack `local` (the https one is
// NAME-tls): the tests use them to leave a developer's own demo and its Pulumi.local.yaml alone.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { commandMain, EXIT, ExitCode, SetupError, UsageError } from "../lib/cli/command";
import { healthStatus, startMinio } from "../harness/minio";
import { backendEnv, openStack, PROJECT_DIR } from "../harness/stack";
import { writeFileAtomic } from "../lib/cli/writeFile";
import { ensureDemoCerts } from "./demoTls";

const USAGE = `usage: npm run demo [-- --tls | --nodes N]                 start MinIO if needed, pulumi up, print the outputs
       npm run demo:down                                     stop the demo's MinIO servers (their data stays)
       npm run demo:pulumi -- [--tls | --nodes N] ARGS...    any pulumi command on the demo stack
       eval "$(npm run -s demo:env)"                         this shell's pulumi, verify, host-config and resign on the demo

  --tls        the HTTPS demo (stack local-tls, MinIO on https://localhost:9443 with a throwaway CA)
  --nodes N    the distributed demo (stack local-cluster): N MinIO processes (2 to 16; 4 survives one down) as
               one erasure-coded cluster on 127.0.0.1:9100, 9102, ... (consoles on 9101, 9103, ...)
Environment: NIX_CACHE_DEMO_PORT (default 9000, 9443 with --tls, 9100 with --nodes: node 1's port; MinIO's
console takes the port + 1, node i the port + 2(i-1)),
NIX_CACHE_DEMO_TLS=1 (as --tls), NIX_CACHE_DEMO_DIR (default .local), NIX_CACHE_DEMO_STACK (default local).
Exit status: 0 done, 2 could not run (bad arguments, the port is taken, MinIO or pulumi failed);
demo:pulumi exits with pulumi's own status.`;

const state = process.env.NIX_CACHE_DEMO_DIR || path.join(PROJECT_DIR, ".local");
const stackName = process.env.NIX_CACHE_DEMO_STACK || "local";
const tlsDir = path.join(state, "tls");
const clusterDir = path.join(state, "cluster");
const credentialsFile = path.join(state, "minio-credentials");

const say = (line: string) => process.stderr.write(`demo: ${line}\n`);
// A path relative to the checkout when inside it (".local/minio.log"), else as it is.
const shown = (file: string) => (file.startsWith(`${PROJECT_DIR}/`) ? path.relative(PROJECT_DIR, file) : file);

/** Where one mode's server, data and stack are. */
interface Mode {
  tls: boolean;
  /** The cluster's size (--nodes); undefined for the one-server demos. */
  nodes?: number;
  stack: string;
  port: number;
  endpoint: string;
  dataDir: string;
  pidFile: string;
  logFile: string;
}

function demoPort(fallback: number): number {
  const given = process.env.NIX_CACHE_DEMO_PORT;
  if (given === undefined || given === "") return fallback;
  const port = Number(given);
  if (!/^[0-9]+$/.test(given) || port < 1 || port > 65534) throw new UsageError(`NIX_CACHE_DEMO_PORT='${given}' (allowed: a port from 1 to 65534)`);
  return port;
}

function modeOf(tls: boolean, nodes?: number): Mode {
  if (nodes !== undefined) {
    const port = demoPort(9100);
    const dir = clusterDir;
    return { tls, nodes, stack: `${stackName}-cluster`, port, endpoint: `http://127.0.0.1:${port}`, dataDir: path.join(dir, "minio-data"), pidFile: path.join(dir, "minio.pid"), logFile: path.join(dir, "minio.log") };
  }
  if (tls) {
    const port = demoPort(9443);
    const dir = tlsDir;
    return { tls, stack: `${stackName}-tls`, port, endpoint: `https://localhost:${port}`, dataDir: path.join(dir, "minio-data"), pidFile: path.join(dir, "minio.pid"), logFile: path.join(dir, "minio.log") };
  }
  const port = demoPort(9000);
  return { tls, stack: stackName, port, endpoint: `http://127.0.0.1:${port}`, dataDir: path.join(state, "minio-data"), pidFile: path.join(state, "minio.pid"), logFile: path.join(state, "minio.log") };
}

/** The pids in this mode's pid file (one per line, node 1 first), running or not. */
function pidsOf(mode: Mode): number[] {
  let text: string;
  try {
    text = fs.readFileSync(mode.pidFile, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isSafeInteger(pid) && pid > 0);
}

/** The pid of this mode's demo MinIO when it is running (a cluster's first running node). */
function runningPid(mode: Mode): number | undefined {
  return pidsOf(mode).find(isRunning);
}

/** The ports a mode's servers listen on: each node's S3 port and its console port next to it. */
const portsOf = (mode: Mode): number[] => Array.from({ length: mode.nodes ?? 1 }, (_, i) => [mode.port + 2 * i, mode.port + 2 * i + 1]).flat();

/** Does process `pid` run? A zombie (exited, not yet reaped by whoever adopted the detached server) does not. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/PID/stat: "PID (COMM) STATE …"; COMM may hold spaces and parentheses, so take the last ")".
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

const commandLineOf = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
  } catch {
    return [];
  }
};

/** Is something listening on 127.0.0.1:port? */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** What listens on the port, as "NAME (pid N)", from ss (iproute2) when it can tell. The name is the program's
 *  (argv[0]), not ss's thread name (node calls its main thread "MainThread"). */
function portHolder(port: number): string | undefined {
  let listing: string;
  try {
    listing = execFileSync("ss", ["-Hltnp", `( sport = :${port} )`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return undefined;
  }
  const found = /users:\(\("([^"]*)",pid=(\d+)/.exec(listing);
  if (!found) return undefined;
  const pid = Number(found[2]);
  const argv0 = commandLineOf(pid)[0];
  return `${argv0 ? path.basename(argv0) : found[1]} (pid ${pid})`;
}

/** Refuses, before anything is made or changed, a demo port (or MinIO's console port next to it) held by
 *  anything but this checkout's own demo MinIO: otherwise the demo would talk to a stranger, which answers
 *  with "rejected the admin credentials" at best. */
async function checkPort(mode: Mode): Promise<boolean> {
  const flag = mode.nodes !== undefined ? ` -- --nodes ${mode.nodes}` : mode.tls ? " -- --tls" : "";
  const again = `NIX_CACHE_DEMO_PORT=${mode.port + 100} npm run demo${flag}`;
  const pid = runningPid(mode);
  if (pid !== undefined) {
    const args = commandLineOf(pid);
    // A cluster's node lists every node's drive URL on its command line: that many, from node 1's port on.
    const drives = args.filter((a) => /^https?:\/\/127\.0\.0\.1:\d+\//.test(a));
    const layout = mode.nodes === undefined || (drives.length === mode.nodes && drives[0].startsWith(`http://127.0.0.1:${mode.port}/`));
    if (layout && args.some((a) => portsOf(mode).some((p) => a === `127.0.0.1:${p}`))) return true;
    const what = mode.nodes === undefined ? `not on port ${mode.port}` : `not as ${mode.nodes} nodes from port ${mode.port} on`;
    say(`this checkout's demo MinIO (pid ${pid}) is running, but ${what} (it runs: ${args.join(" ")}); nothing was changed.`);
    say(`Use the ${mode.nodes === undefined ? "port" : "port and node count"} it runs with (unset NIX_CACHE_DEMO_PORT or set it to that port), or stop it first: npm run demo:down`);
    return false;
  }
  for (const port of portsOf(mode)) {
    if (!(await portOpen(port))) continue;
    const node = (port - mode.port) >> 1;
    const isConsole = (port - mode.port) % 2 === 1;
    const what =
      mode.nodes === undefined
        ? port === mode.port
          ? `port ${port}`
          : `port ${port} (MinIO's console port, the demo port + 1)`
        : `port ${port} (node ${node + 1}'s ${isConsole ? "console port" : "port"}, the demo port + ${port - mode.port})`;
    const holder = portHolder(port);
    say(
      `${what} on 127.0.0.1 is taken by ${holder ?? `a process this script cannot name (ss shows it: ss -ltnp 'sport = :${port}')`}, ` +
        "which is not this checkout's demo MinIO; nothing was started or changed.",
    );
    if (holder?.startsWith("minio")) say("If it is another checkout's demo, `npm run demo:down` there stops it.");
    say(`Stop it, or give the demo another port: ${again}`);
    return false;
  }
  return true;
}

/** The demo's MinIO root credentials, made on the first run (the file keeps demo.sh's KEY=value format). */
function rootCredentials(): { user: string; password: string } {
  if (!fs.existsSync(credentialsFile)) {
    const password = crypto.randomBytes(24).toString("base64").replace(/[/+=]/g, "");
    writeFileAtomic(credentialsFile, `MINIO_ROOT_USER=nixcacheadmin\nMINIO_ROOT_PASSWORD=${password}\n`, 0o600);
  }
  const values = Object.fromEntries(
    fs
      .readFileSync(credentialsFile, "utf8")
      .split("\n")
      .map((line) => line.split(/=(.*)/s, 2))
      .filter((kv) => kv.length === 2),
  );
  const user = values.MINIO_ROOT_USER;
  const password = values.MINIO_ROOT_PASSWORD;
  if (!user || !password) throw new SetupError(`${shown(credentialsFile)} lacks MINIO_ROOT_USER or MINIO_ROOT_PASSWORD: remove it to make new ones`);
  return { user, password };
}

/** Starts this mode's MinIO unless it runs already, and waits until it is ready. */
async function ensureMinio(mode: Mode, root: { user: string; password: string }, caPem: string | undefined, tls?: Awaited<ReturnType<typeof ensureDemoCerts>>): Promise<void> {
  const pid = runningPid(mode);
  const logs = mode.nodes === undefined ? shown(mode.logFile) : `${shown(path.dirname(mode.logFile))}/minio-node*.log`;
  if (pid === undefined) {
    const what = mode.nodes === undefined ? `MinIO at ${mode.endpoint}` : `a MinIO cluster of ${mode.nodes} nodes at ${portsOf(mode).filter((_, i) => i % 2 === 0).map((p) => `127.0.0.1:${p}`).join(", ")}`;
    say(`starting ${what} (data in ${shown(mode.dataDir)})`);
    try {
      await startMinio({ baseDir: path.dirname(mode.dataDir), dataDir: mode.dataDir, logFile: mode.logFile, port: mode.port, consolePort: mode.port + 1, root, tls, detached: { pidFile: mode.pidFile }, nodes: mode.nodes });
    } catch (err) {
      throw new SetupError(`MinIO did not start at ${mode.endpoint}; see ${logs}: ${(err as Error).message}`);
    }
    return;
  }
  const pids = pidsOf(mode);
  if (mode.nodes !== undefined) {
    const down = pids.map((p, i) => (isRunning(p) ? undefined : i + 1)).filter((i) => i !== undefined);
    say(`MinIO cluster already running at ${mode.endpoint} (pids ${pids.filter(isRunning).join(", ")})${down.length ? `; node ${down.join(", ")} not running` : ""}`);
  } else {
    say(`MinIO already running at ${mode.endpoint} (pid ${pid})`);
  }
  // A cluster is ready when node 1 sees enough of its nodes to write.
  const health = mode.nodes === undefined ? "ready" : "cluster";
  for (let i = 0; i < 150; i++) {
    if ((await healthStatus(`${mode.endpoint}/minio/health/${health}`, caPem)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new SetupError(`MinIO (pid ${pid}) did not become ready at ${mode.endpoint} in 30 s; see ${logs}${mode.nodes ? " (npm run demo:down, then again, restarts every node)" : ""}`);
}

/** The demo backend's environment (made on the first run): the stack helper's, with the passphrase in a file. */
function demoBackendEnv(): Record<string, string> {
  const backend = path.join(state, "backend");
  const home = path.join(state, "pulumi-home");
  fs.mkdirSync(backend, { recursive: true });
  fs.mkdirSync(home, { recursive: true });
  const passphrase = path.join(state, "passphrase");
  if (!fs.existsSync(passphrase)) writeFileAtomic(passphrase, `${crypto.randomBytes(24).toString("base64")}\n`, 0o600);
  return backendEnv(backend, home, { file: passphrase });
}

/** Runs the pulumi CLI on the demo backend with the terminal as its own; its exit status. */
function pulumiCli(args: string[], env: Record<string, string>): number {
  const run = spawnSync("pulumi", args, { cwd: PROJECT_DIR, env: { ...process.env, ...env }, stdio: "inherit" });
  if (run.error) throw new SetupError(`could not run pulumi: ${run.error.message} (run the demo with npm run demo, which installs it)`);
  return run.status ?? EXIT.cannotRun;
}

async function up(mode: Mode): Promise<ExitCode> {
  if (!(await checkPort(mode))) return EXIT.cannotRun;
  const certs = mode.tls ? await ensureDemoCerts(tlsDir) : undefined;
  fs.mkdirSync(mode.dataDir, { recursive: true });
  const root = rootCredentials();
  await ensureMinio(mode, root, certs?.ca.certPem, certs);
  const env = demoBackendEnv();
  const stack = await openStack(mode.stack, env);
  // Set only what differs, so a second run leaves Pulumi.<stack>.yaml as it is (a secret is re-encrypted anew).
  const current = async (key: string) => (await stack.getConfig(key).catch(() => undefined))?.value;
  const wanted: [string, string, boolean][] = [
    ["nix-cache:endpoint", mode.endpoint, false],
    ["nix-cache:adminUser", root.user, false],
    ["nix-cache:adminPassword", root.password, true],
  ];
  if (certs) wanted.push(["nix-cache:caCertificate", certs.ca.certPem, false]);
  for (const [key, value, secret] of wanted) {
    if ((await current(key)) !== value) await stack.setConfig(key, { value, secret });
  }
  const result = await stack.up({ onOutput: (text) => process.stdout.write(text) });
  if (result.summary.result !== "succeeded") throw new SetupError(`pulumi up ended ${result.summary.result}`);
  console.log();
  pulumiCli(["stack", "output", "--stack", mode.stack], env);
  console.log();
  const flag = mode.nodes !== undefined ? `--nodes ${mode.nodes} ` : mode.tls ? "--tls " : "";
  console.log(`Secrets are hidden above. To see them: npm run demo:pulumi -- ${flag}stack output --show-secrets`);
  console.log(`Check for drift: npm run demo:pulumi -- ${flag}preview --refresh --expect-no-changes`);
  if (certs) {
    const outputs = await stack.outputs();
    console.log(`The CA MinIO's certificate comes from: ${shown(tlsDir)}/ca.pem (key in ${shown(tlsDir)}/ca.key)`);
    const substituter = outputs.substituterUrl?.value;
    if (typeof substituter === "string") console.log(`Fetch over HTTPS: curl --cacert ${shown(tlsDir)}/ca.pem ${substituter}/nix-cache-info`);
  }
  if (mode.nodes !== undefined) {
    const nodes = portsOf(mode).filter((_, i) => i % 2 === 0);
    console.log(`The cluster's nodes (the stack uses node 1): ${nodes.map((p) => `http://127.0.0.1:${p}`).join(" ")}`);
    console.log(`Each serves the cache: curl http://127.0.0.1:${nodes[nodes.length - 1]}/nix-cache/nix-cache-info`);
    console.log("Stop the servers: npm run demo:down");
    return EXIT.ok;
  }
  console.log("Stop the server: npm run demo:down");
  return EXIT.ok;
}

/** Stops one mode's server, waiting (up to 10 s) until it is gone; whether one was running. */
async function stop(mode: Mode, name: string): Promise<boolean> {
  const pids = pidsOf(mode).filter(isRunning);
  if (pids.length > 0) {
    for (const pid of pids) process.kill(pid, "SIGTERM");
    for (let i = 0; i < 50 && runningPid(mode) !== undefined; i++) await new Promise((r) => setTimeout(r, 200));
    say(`stopped the ${name} MinIO ${pids.length > 1 ? `servers (${pids.length} nodes)` : "server"} (data kept in ${shown(mode.dataDir)})`);
  }
  fs.rmSync(mode.pidFile, { force: true });
  return pids.length > 0;
}

/** `--nodes N` (or `--nodes=N`) at the start of `rest`, taken out of it; undefined when absent. */
function nodesOption(rest: string[]): number | undefined {
  const m = /^--nodes(?:=(.*))?$/.exec(rest[0] ?? "");
  if (!m) return undefined;
  rest.shift();
  const given = m[1] ?? rest.shift() ?? "";
  if (!/^[0-9]+$/.test(given) || Number(given) < 2 || Number(given) > 16) throw new UsageError(`--nodes '${given}' (allowed: a number of nodes from 2 to 16, e.g. 4)`);
  return Number(given);
}

function tlsFromEnvironment(): boolean {
  const given = process.env.NIX_CACHE_DEMO_TLS ?? "";
  if (["1", "true", "yes"].includes(given)) return true;
  if (["", "0", "false", "no"].includes(given)) return false;
  throw new UsageError(`NIX_CACHE_DEMO_TLS='${given}' (allowed: 1 or 0)`);
}

/** The subcommand (default up) and its arguments, or "help"; by hand, since `pulumi` passes pulumi's on as they are. */
function parseDemo(argv: readonly string[]): { command: string; rest: string[] } | "help" {
  const [command = "up", ...rest] = argv;
  if (command === "--help" || command === "-h" || rest[0] === "--help" || rest[0] === "-h") return "help";
  return { command, rest };
}

async function demo({ command, rest }: { command: string; rest: string[] }): Promise<ExitCode> {
  let tls = tlsFromEnvironment();
  // `up --tls`, `pulumi --tls …`; `down` stops both servers anyway.
  if (rest[0] === "--tls") {
    tls = true;
    rest.shift();
  }
  const nodes = command === "up" || command === "pulumi" ? nodesOption(rest) : undefined;
  if (nodes !== undefined && (tls || rest[0] === "--tls")) throw new UsageError("--nodes and --tls together (the distributed demo is http only)");
  switch (command) {
    case "up":
      if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' to up (allowed: --tls, --nodes N)`);
      return up(modeOf(tls, nodes));
    case "down": {
      if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' to down (it stops the http, the https and the cluster servers)`);
      const stoppedHttp = await stop(modeOf(false), "http");
      const stoppedHttps = await stop(modeOf(true), "https (--tls)");
      // The pid file lists every node, whatever their number.
      const stoppedCluster = await stop(modeOf(false, 4), "cluster (--nodes)");
      if (!stoppedHttp && !stoppedHttps && !stoppedCluster) say("MinIO is not running");
      return EXIT.ok;
    }
    case "env": {
      if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' to env (it takes none)`);
      // The toolchain directory with-toolchain.sh put first on PATH, so `pulumi` is the project's.
      const toolchainBin = (process.env.PATH ?? "").split(":")[0];
      const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
      const lines = Object.entries(demoBackendEnv()).map(([k, v]) => `export ${k}=${quote(v)}`);
      console.log(`# the demo's backend (stacks ${modeOf(false).stack}, ${modeOf(true).stack} and ${modeOf(false, 4).stack}); pass --stack to each command`);
      console.log([...lines, `export PATH=${quote(toolchainBin)}:"$PATH"`].join("\n"));
      return EXIT.ok;
    }
    case "pulumi": {
      const mode = modeOf(tls, nodes);
      // pulumi's own exit status, as when it is run by hand.
      process.exit(pulumiCli(["--stack", mode.stack, ...rest], demoBackendEnv()));
    }
    default:
      throw new UsageError(`unknown command '${command}' (allowed: up, down, pulumi, env)`);
  }
}

commandMain(module, { name: "demo", usage: USAGE, parse: parseDemo, run: demo });
