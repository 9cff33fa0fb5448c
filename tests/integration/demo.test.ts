// The demo's port: when the demo port (or MinIO's console port next to it) is held by anything that is not
// this checkout's own demo MinIO, `demo.sh up` says what holds it and how to pick another port, and exits 2
// before it makes or changes anything. Each case uses its own demo directory (NIX_CACHE_DEMO_DIR), so a
// developer's own .local/ demo is never touched.
import { execFile, spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { freePort, MinioServer, startMinio } from "../../harness/minio";
import { PROJECT_DIR } from "../../harness/stack";

const DEMO = path.join(PROJECT_DIR, "scripts", "demo.sh");
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

/** `bash scripts/demo.sh up [...]` with the given demo directory and port; never blocks the test's event loop. */
function demoUp(dir: string, port: number, extra: string[] = []): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", [DEMO, "up", ...extra], { env: { ...process.env, NIX_CACHE_DEMO_DIR: dir, NIX_CACHE_DEMO_PORT: String(port) }, timeout: 60_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stderr });
    });
  });
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
