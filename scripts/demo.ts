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
// NIX_CACHE_DEMO_DIR moves .local/ elsewhere and NIX_CACHE_DEMO_STACK renames stack `local` (the https one is
// NAME-tls): the tests use them to leave a developer's own demo and its Pulumi.local.yaml alone.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { EXIT, ExitCode, runCommand, SetupError, UsageError } from "../lib/cli";
import { healthStatus, startMinio } from "../harness/minio";
import { backendEnv, openStack, PROJECT_DIR } from "../harness/stack";
import { writeFileAtomic } from "../lib/writeFile";
import { ensureDemoCerts } from "./demoTls";

const USAGE = `usage: npm run demo [-- --tls]                 start MinIO if needed, pulumi up, print the outputs
       npm run demo:down                          stop the demo's MinIO servers (their data stays)
       npm run demo:pulumi -- [--tls] ARGS...     any pulumi command on the demo stack
       eval "$(npm run -s demo:env)"              this shell's pulumi, verify, host-config and resign on the demo

  --tls        the HTTPS demo (stack local-tls, MinIO on https://localhost:9443 with a throwaway CA)
Environment: NIX_CACHE_DEMO_PORT (default 9000, 9443 with --tls; MinIO's console takes the port + 1),
NIX_CACHE_DEMO_TLS=1 (as --tls), NIX_CACHE_DEMO_DIR (default .local), NIX_CACHE_DEMO_STACK (default local).
Exit status: 0 done, 2 could not run (bad arguments, the port is taken, MinIO or pulumi failed);
demo:pulumi exits with pulumi's own status.`;

const state = process.env.NIX_CACHE_DEMO_DIR || path.join(PROJECT_DIR, ".local");
const stackName = process.env.NIX_CACHE_DEMO_STACK || "local";
const tlsDir = path.join(state, "tls");
const credentialsFile = path.join(state, "minio-credentials");

const say = (line: string) => process.stderr.write(`demo: ${line}\n`);
// A path relative to the checkout when inside it (".local/minio.log"), else as it is.
const shown = (file: string) => (file.startsWith(`${PROJECT_DIR}/`) ? path.relative(PROJECT_DIR, file) : file);

/** Where one mode's server, data and stack are. */
interface Mode {
  tls: boolean;
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

function modeOf(tls: boolean): Mode {
  if (tls) {
    const port = demoPort(9443);
    const dir = tlsDir;
    return { tls, stack: `${stackName}-tls`, port, endpoint: `https://localhost:${port}`, dataDir: path.join(dir, "minio-data"), pidFile: path.join(dir, "minio.pid"), logFile: path.join(dir, "minio.log") };
  }
  const port = demoPort(9000);
  return { tls, stack: stackName, port, endpoint: `http://127.0.0.1:${port}`, dataDir: path.join(state, "minio-data"), pidFile: path.join(state, "minio.pid"), logFile: path.join(state, "minio.log") };
}

/** The pid of this mode's demo MinIO when it is running. */
function runningPid(mode: Mode): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(mode.pidFile, "utf8").trim());
  } catch {
    return undefined;
  }
  return Number.isSafeInteger(pid) && pid > 0 && isRunning(pid) ? pid : undefined;
}

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
  const again = `NIX_CACHE_DEMO_PORT=${mode.port + 100} npm run demo${mode.tls ? " -- --tls" : ""}`;
  const pid = runningPid(mode);
  if (pid !== undefined) {
    const args = commandLineOf(pid);
    if (args.includes(`127.0.0.1:${mode.port}`)) return true;
    say(`this checkout's demo MinIO (pid ${pid}) is running, but not on port ${mode.port} (it runs: ${args.join(" ")}); nothing was changed.`);
    say("Use the port it runs on (unset NIX_CACHE_DEMO_PORT or set it to that port), or stop it first: npm run demo:down");
    return false;
  }
  for (const port of [mode.port, mode.port + 1]) {
    if (!(await portOpen(port))) continue;
    const what = port === mode.port ? `port ${port}` : `port ${port} (MinIO's console port, the demo port + 1)`;
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
  if (pid === undefined) {
    say(`starting MinIO at ${mode.endpoint} (data in ${shown(mode.dataDir)})`);
    try {
      await startMinio({ baseDir: path.dirname(mode.dataDir), dataDir: mode.dataDir, logFile: mode.logFile, port: mode.port, consolePort: mode.port + 1, root, tls, detached: { pidFile: mode.pidFile } });
    } catch (err) {
      throw new SetupError(`MinIO did not start at ${mode.endpoint}; see ${shown(mode.logFile)}: ${(err as Error).message}`);
    }
    return;
  }
  say(`MinIO already running at ${mode.endpoint} (pid ${pid})`);
  for (let i = 0; i < 150; i++) {
    if ((await healthStatus(`${mode.endpoint}/minio/health/ready`, caPem)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new SetupError(`MinIO (pid ${pid}) did not become ready at ${mode.endpoint} in 30 s; see ${shown(mode.logFile)}`);
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
  const flag = mode.tls ? "--tls " : "";
  console.log(`Secrets are hidden above. To see them: npm run demo:pulumi -- ${flag}stack output --show-secrets`);
  console.log(`Check for drift: npm run demo:pulumi -- ${flag}preview --refresh --expect-no-changes`);
  if (certs) {
    const outputs = await stack.outputs();
    console.log(`The CA MinIO's certificate comes from: ${shown(tlsDir)}/ca.pem (key in ${shown(tlsDir)}/ca.key)`);
    const substituter = outputs.substituterUrl?.value;
    if (typeof substituter === "string") console.log(`Fetch over HTTPS: curl --cacert ${shown(tlsDir)}/ca.pem ${substituter}/nix-cache-info`);
  }
  console.log("Stop the server: npm run demo:down");
  return EXIT.ok;
}

/** Stops one mode's server, waiting (up to 10 s) until it is gone; whether one was running. */
async function stop(mode: Mode, name: string): Promise<boolean> {
  const pid = runningPid(mode);
  if (pid !== undefined) {
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 50 && runningPid(mode) !== undefined; i++) await new Promise((r) => setTimeout(r, 200));
    say(`stopped the ${name} MinIO server (data kept in ${shown(mode.dataDir)})`);
  }
  fs.rmSync(mode.pidFile, { force: true });
  return pid !== undefined;
}

function tlsFromEnvironment(): boolean {
  const given = process.env.NIX_CACHE_DEMO_TLS ?? "";
  if (["1", "true", "yes"].includes(given)) return true;
  if (["", "0", "false", "no"].includes(given)) return false;
  throw new UsageError(`NIX_CACHE_DEMO_TLS='${given}' (allowed: 1 or 0)`);
}

async function main(): Promise<ExitCode> {
  const [command = "up", ...rest] = process.argv.slice(2);
  if (command === "--help" || command === "-h" || rest[0] === "--help" || rest[0] === "-h") {
    console.log(USAGE);
    return EXIT.ok;
  }
  let tls = tlsFromEnvironment();
  // `up --tls`, `pulumi --tls …`; `down` stops both servers anyway.
  if (rest[0] === "--tls") {
    tls = true;
    rest.shift();
  }
  switch (command) {
    case "up":
      if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' to up (allowed: --tls)`);
      return up(modeOf(tls));
    case "down": {
      if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' to down (it stops both the http and the https server)`);
      const stoppedHttp = await stop(modeOf(false), "http");
      const stoppedHttps = await stop(modeOf(true), "https (--tls)");
      if (!stoppedHttp && !stoppedHttps) say("MinIO is not running");
      return EXIT.ok;
    }
    case "env": {
      if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' to env (it takes none)`);
      // The toolchain directory with-toolchain.sh put first on PATH, so `pulumi` is the project's.
      const toolchainBin = (process.env.PATH ?? "").split(":")[0];
      const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
      const lines = Object.entries(demoBackendEnv()).map(([k, v]) => `export ${k}=${quote(v)}`);
      console.log(`# the demo's backend (stacks ${modeOf(false).stack} and ${modeOf(true).stack}); pass --stack to each command`);
      console.log([...lines, `export PATH=${quote(toolchainBin)}:"$PATH"`].join("\n"));
      return EXIT.ok;
    }
    case "pulumi": {
      const mode = modeOf(tls);
      // pulumi's own exit status, as when it is run by hand.
      process.exit(pulumiCli(["--stack", mode.stack, ...rest], demoBackendEnv()));
    }
    default:
      throw new UsageError(`unknown command '${command}' (allowed: up, down, pulumi, env)`);
  }
}

if (require.main === module) void runCommand("demo", main, { usage: USAGE });
