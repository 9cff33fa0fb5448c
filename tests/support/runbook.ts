// A runbook script of docs/ (shown verbatim by its doc, tests/unit/runbookDocs.test.ts) run as its reader runs it,
// on a test stack: `bash docs/NAME.sh` in the checkout, the stack selected with `pulumi stack select` as the
// docs say, the stack's backend and passphrase in the environment, the toolchain on PATH, and a HOME of its own
// (the runbooks write under ~). Pulumi's prompts get what a reader types: "yes" to each update
// (PULUMI_SKIP_CONFIRMATIONS). The test's own npm, ts-node and Pulumi settings stay out.
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR, TestStack } from "../../harness/stack";

export interface RunbookRun {
  code: number | null;
  /** stdout and stderr, interleaved as a terminal shows them. */
  output: string;
}

export interface Reader {
  /** The reader's HOME (a temporary directory): where `~/...` in a runbook lands. */
  home: string;
  env: NodeJS.ProcessEnv;
  /** Runs `bash docs/SCRIPT ARGS` in the checkout; resolves with its exit status and output. */
  run(script: string, args?: string[]): Promise<RunbookRun>;
  /** Removes HOME. */
  remove(): void;
}

/** The npm packages must be installed for this package-lock.json: `npm run` in the script would run `npm ci` otherwise (scripts/with-toolchain.sh), rewriting node_modules under the other test files. */
function requireInstalledPackages(): void {
  const stamp = path.join(PROJECT_DIR, "node_modules", ".nix-cache-installed");
  if (!fs.existsSync(stamp) || fs.statSync(path.join(PROJECT_DIR, "package-lock.json")).mtimeMs > fs.statSync(stamp).mtimeMs) {
    throw new Error("the npm packages are not installed for this package-lock.json: run the tests with `npm test`, which installs them first");
  }
}

/** A reader of the runbooks working on stack `t`, selected (as `pulumi stack select NAME` in the checkout). */
export function readerOf(t: TestStack): Reader {
  requireInstalledPackages();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-reader-"));
  const own = Object.entries(process.env).filter(([k]) => !/^(npm_|PULUMI_|TS_NODE_|INIT_CWD$)/.test(k));
  // The toolchain stays where the tests' is (toolchain.sh looks under HOME otherwise, and would build it again).
  const tools = process.env.NIX_CACHE_TOOLS_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "nix-cache-tools");
  const env: NodeJS.ProcessEnv = { ...Object.fromEntries(own), HOME: home, NIX_CACHE_TOOLS_DIR: tools, ...t.env, PULUMI_SKIP_CONFIRMATIONS: "true" };
  // In the stack's own PULUMI_HOME (t.env): the checkout's committed files stay as they are.
  execFileSync("pulumi", ["stack", "select", t.stack.name], { cwd: PROJECT_DIR, env, stdio: "ignore" });
  const run = (script: string, args: string[] = []) =>
    new Promise<RunbookRun>((resolve, reject) => {
      const child = spawn("bash", [path.join("docs", script), ...args], { cwd: PROJECT_DIR, env, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
      child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, output }));
    });
  return { home, env, run, remove: () => fs.rmSync(home, { recursive: true, force: true }) };
}

/** The run's output when it ended well; else an error that shows it all. */
export function succeeded(script: string, run: RunbookRun): string {
  if (run.code !== 0) throw new Error(`bash docs/${script} exited ${run.code}:\n${run.output}`);
  return run.output;
}
