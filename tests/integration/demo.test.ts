// The demo's port: when the demo port (or MinIO's console port next to it) is held by anything that is not
// this checkout's own demo MinIO, `npm run demo` says what holds it and how to pick another port, and exits 2
// before it makes or changes anything. Each case uses its own demo directory (NIX_CACHE_DEMO_DIR), so a
// developer's own .local/ demo is never touched.
import { execFile, spawn, ChildProcess } from "child_process";
import * as crypto from "crypto";
import * as https from "https";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { freePort, MinioServer, startMinio } from "../../harness/minio";
import { PROJECT_DIR } from "../../harness/stack";
import { isRunning } from "../../scripts/demo";

const DEMO = path.join(PROJECT_DIR, "scripts", "demo.ts");
const dirs: string[] = [];
const servers: net.Server[] = [];
let minio: MinioServer | undefined;
let fakeOwn: ChildProcess | undefined;

/** A fresh, empty demo directory. */
function demoDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-demo-"));
  dirs.push(dir);
  return dir;
}

interface DemoRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** scripts/demo.ts (what `npm run demo`, `demo:down` and `demo:pulumi` run) with the given environment; never
 *  blocks the test's event loop. */
function demo(args: string[], env: Record<string, string>, timeout = 60_000): Promise<DemoRun> {
  return new Promise((resolve) => {
    execFile("node", ["-r", "ts-node/register/transpile-only", DEMO, ...args], { cwd: PROJECT_DIR, env: { ...process.env, ...env }, timeout }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

/** `npm run demo [-- ...]` with the given demo directory and port. */
const demoUp = (dir: string, port: number, extra: string[] = []) => demo(["up", ...extra], { NIX_CACHE_DEMO_DIR: dir, NIX_CACHE_DEMO_PORT: String(port) });

/** The first of `count` consecutive free ports (a cluster demo's nodes and consoles). */
async function freeRange(count: number): Promise<number> {
  for (;;) {
    const first = await freePort();
    if (first + count > 65535) continue;
    const taken = await Promise.all(
      Array.from({ length: count - 1 }, (_, i) =>
        new Promise<boolean>((resolve) => {
          const probe = net.createServer();
          probe.once("error", () => resolve(true));
          probe.listen(first + i + 1, "127.0.0.1", () => probe.close(() => resolve(false)));
        }),
      ),
    );
    if (!taken.includes(true)) return first;
  }
}

/** Listens on 127.0.0.1:port in this (node) process. */
async function hold(port: number): Promise<void> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  servers.push(server);
}

afterAll(async () => {
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
  fakeOwn?.kill("SIGKILL");
  await minio?.destroy();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe("npm run demo refuses a port it does not own, before touching anything", () => {
  test("the demo port held by another program: names it (name and pid) and NIX_CACHE_DEMO_PORT; exits 2; nothing made", async () => {
    const port = await freePort();
    await hold(port);
    const dir = demoDir();
    const r = await demoUp(dir, port);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`demo: port ${port} on 127.0.0.1 is taken by node (pid ${process.pid}), which is not this checkout's demo MinIO; nothing was started or changed.`);
    expect(r.stderr).toContain(`give the demo another port: NIX_CACHE_DEMO_PORT=${port + 100} npm run demo`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("MinIO's console port (demo port + 1) held: said so, for the https demo too", async () => {
    const port = await freePort();
    await hold(port + 1);
    const dir = demoDir();
    const r = await demoUp(dir, port, ["--tls"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`port ${port + 1} (MinIO's console port, the demo port + 1) on 127.0.0.1 is taken by node (pid ${process.pid})`);
    expect(r.stderr).toContain(`NIX_CACHE_DEMO_PORT=${port + 100} npm run demo -- --tls`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("--nodes 4: every node's port and console port is checked (here node 3's console port, the demo port + 5)", async () => {
    const port = await freeRange(8);
    await hold(port + 5);
    const dir = demoDir();
    const r = await demoUp(dir, port, ["--nodes", "4"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`port ${port + 5} (node 3's console port, the demo port + 5) on 127.0.0.1 is taken by node (pid ${process.pid})`);
    expect(r.stderr).toContain(`NIX_CACHE_DEMO_PORT=${port + 100} npm run demo -- --nodes 4`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("another checkout's MinIO on the port: named as minio, with how that checkout stops it", async () => {
    minio = await startMinio();
    const dir = demoDir();
    const r = await demoUp(dir, minio.port);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`port ${minio.port} on 127\\.0\\.0\\.1 is taken by minio \\(pid \\d+\\)`));
    expect(r.stderr).toContain("If it is another checkout's demo, `npm run demo:down` there stops it.");
    expect(r.stderr).not.toContain("rejected the admin credentials");
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("this checkout's own demo MinIO on another port: says which, instead of starting a second one", async () => {
    const ownPort = await freePort();
    const askedPort = await freePort();
    const dir = demoDir();
    // The demo's pid file points at a process started the way the demo starts MinIO (its address in argv).
    fakeOwn = spawn("bash", ["-c", "sleep 600; :", "minio", "server", path.join(dir, "minio-data"), "--address", `127.0.0.1:${ownPort}`], { stdio: "ignore" });
    fs.writeFileSync(path.join(dir, "minio.pid"), `${fakeOwn.pid}\n`);
    const r = await demoUp(dir, askedPort);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`this checkout's demo MinIO (pid ${fakeOwn.pid}) is running, but not on port ${askedPort}`);
    expect(r.stderr).toContain(`127.0.0.1:${ownPort}`);
    expect(r.stderr).toContain("npm run demo:down");
    expect(fs.readdirSync(dir)).toEqual(["minio.pid"]);
  });
});

/** The status and body of GET url, trusting `ca` for https. */
function get(url: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

// The user's first contact, end to end: the demo starts its MinIO (harness/minio.ts, detached), deploys the
// stack (harness/stack.ts), a second run changes nothing, the stack has no drift, the https demo works beside
// it, and demo:down stops both servers. Its own directory, ports and stack names: a developer's demo is left alone.
describe("npm run demo: up, real requests, no drift, a second run changes nothing, --tls and --nodes 4 beside it, down", () => {
  const stack = `it-demo-${crypto.randomBytes(3).toString("hex")}`;
  let env: Record<string, string>;
  let dir: string;
  let port: number;
  let tlsPort: number;
  let clusterPort: number;

  beforeAll(async () => {
    dir = demoDir();
    port = await freePort();
    tlsPort = await freePort();
    clusterPort = await freeRange(8);
    env = { NIX_CACHE_DEMO_DIR: dir, NIX_CACHE_DEMO_PORT: String(port), NIX_CACHE_DEMO_STACK: stack };
  });
  afterAll(async () => {
    await demo(["down"], env);
    for (const name of [stack, `${stack}-tls`, `${stack}-cluster`]) fs.rmSync(path.join(PROJECT_DIR, `Pulumi.${name}.yaml`), { force: true });
  });

  test("up: MinIO started, the cache deployed and served, the outputs printed with secrets hidden", async () => {
    const r = await demo(["up"], env, 180_000);
    expect(r.stderr).toContain(`demo: starting MinIO at http://127.0.0.1:${port}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/substituterUrl\s+http:\/\/127\.0\.0\.1:\d+\/nix-cache/);
    expect(r.stdout).toContain("Stop the server: npm run demo:down");
    const info = await fetch(`http://127.0.0.1:${port}/nix-cache/nix-cache-info`);
    expect(info.status).toBe(200);
    expect(await info.text()).toContain("StoreDir: /nix/store");
    const password = /MINIO_ROOT_PASSWORD=(.*)/.exec(fs.readFileSync(path.join(dir, "minio-credentials"), "utf8"))?.[1];
    expect(password).toBeTruthy();
    expect(r.stdout + r.stderr).not.toContain(password);
    expect(fs.statSync(path.join(dir, "minio-credentials")).mode & 0o777).toBe(0o600);
  });

  test("a second up reuses the running MinIO and changes nothing; demo:pulumi preview --refresh finds no drift", async () => {
    const yaml = fs.readFileSync(path.join(PROJECT_DIR, `Pulumi.${stack}.yaml`), "utf8");
    const r = await demo(["up"], env, 180_000);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`demo: MinIO already running at http://127.0.0.1:${port}`);
    expect(r.stdout).toMatch(/\d+ unchanged/);
    expect(r.stdout).not.toMatch(/\d+ (created|updated|deleted|replaced)/);
    expect(fs.readFileSync(path.join(PROJECT_DIR, `Pulumi.${stack}.yaml`), "utf8")).toBe(yaml);
    const preview = await demo(["pulumi", "preview", "--refresh", "--expect-no-changes", "--non-interactive"], env, 180_000);
    expect(preview.code).toBe(0);
  });

  test("demo:env: a shell that evals it runs pulumi on the demo's backend", async () => {
    const r = await demo(["env"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`export PULUMI_BACKEND_URL='file://${dir}/backend'`);
    const shell = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile("bash", ["-c", `eval "$1" && pulumi stack output substituterUrl --stack ${stack}`, "bash", r.stdout], { cwd: PROJECT_DIR, env: { ...process.env, PATH: "/usr/bin:/bin" } }, (err, stdout) =>
        resolve({ code: err ? 1 : 0, stdout }),
      );
    });
    expect(shell.code).toBe(0);
    expect(shell.stdout.trim()).toBe(`http://127.0.0.1:${port}/nix-cache`);
  });

  test("up --tls: its own MinIO over https with the demo CA, its own stack, the http demo untouched", async () => {
    const tlsEnv = { ...env, NIX_CACHE_DEMO_PORT: String(tlsPort) };
    const r = await demo(["up", "--tls"], tlsEnv, 180_000);
    expect(r.stderr).toContain(`demo: starting MinIO at https://localhost:${tlsPort}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Fetch over HTTPS: curl --cacert`);
    const ca = fs.readFileSync(path.join(dir, "tls", "ca.pem"), "utf8");
    const info = await get(`https://localhost:${tlsPort}/nix-cache/nix-cache-info`, ca);
    expect(info.status).toBe(200);
    expect(info.body).toContain("StoreDir: /nix/store");
    // Without the CA the certificate is not trusted: it really is the demo CA's.
    await expect(get(`https://localhost:${tlsPort}/nix-cache/nix-cache-info`)).rejects.toThrow(/self.signed|unable to get local issuer|unable to verify/i);
    expect((await fetch(`http://127.0.0.1:${port}/nix-cache/nix-cache-info`)).status).toBe(200);
  });

  test("up --nodes 4: its own 4-node cluster and stack, every node serves the cache, the other demos untouched", async () => {
    const clusterEnv = { ...env, NIX_CACHE_DEMO_PORT: String(clusterPort) };
    const nodes = [0, 2, 4, 6].map((d) => clusterPort + d);
    const r = await demo(["up", "--nodes", "4"], clusterEnv, 180_000);
    expect(r.stderr).toContain(`demo: starting a MinIO cluster of 4 nodes at ${nodes.map((p) => `127.0.0.1:${p}`).join(", ")}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`substituterUrl     http://127.0.0.1:${clusterPort}/nix-cache`);
    expect(r.stdout).toContain(`The cluster's nodes (the stack uses node 1): ${nodes.map((p) => `http://127.0.0.1:${p}`).join(" ")}`);
    for (const p of nodes) {
      const info = await fetch(`http://127.0.0.1:${p}/nix-cache/nix-cache-info`);
      expect([p, info.status]).toEqual([p, 200]);
      expect((await fetch(`http://127.0.0.1:${p}/minio/health/cluster`)).status).toBe(200);
    }
    expect(fs.readFileSync(path.join(dir, "cluster", "minio.pid"), "utf8").trim().split("\n")).toHaveLength(4);
    // demo:pulumi -- --nodes 4 works on the cluster's stack.
    const output = await demo(["pulumi", "--nodes", "4", "stack", "output", "substituterUrl"], clusterEnv);
    expect([output.code, output.stdout.trim()]).toEqual([0, `http://127.0.0.1:${clusterPort}/nix-cache`]);
    expect((await fetch(`http://127.0.0.1:${port}/nix-cache/nix-cache-info`)).status).toBe(200);
  });

  test("down stops every server (http, https, the cluster's 4 nodes) and keeps their data", async () => {
    const pids = [path.join(dir, "minio.pid"), path.join(dir, "tls", "minio.pid"), path.join(dir, "cluster", "minio.pid")].flatMap((f) =>
      fs.readFileSync(f, "utf8").trim().split("\n").map(Number),
    );
    expect(pids).toHaveLength(6);
    expect(pids.every(isRunning)).toBe(true);
    const r = await demo(["down"], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("demo: stopped the http MinIO server");
    expect(r.stderr).toContain("demo: stopped the https (--tls) MinIO server");
    expect(r.stderr).toContain("demo: stopped the cluster (--nodes) MinIO servers (4 nodes)");
    expect(fs.readdirSync(path.join(dir, "cluster", "minio-data")).sort()).toEqual(["node1", "node2", "node3", "node4"]);
    expect(pids.some(isRunning)).toBe(false);
    expect(fs.readdirSync(path.join(dir, "minio-data"))).toContain("nix-cache");
    expect((await demo(["down"], env)).stderr).toContain("demo: MinIO is not running");
  });
});
