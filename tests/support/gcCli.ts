// `npm run gc` as an operator runs it, for the integration and end-to-end tests: a child process reading the
// stack through the pulumi CLI, in a process group of its own so a test can kill it whole (npm and node).
import { ChildProcess, spawn } from "child_process";
import { PROJECT_DIR, TestStack } from "../../harness/stack";

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function startGcCli(t: TestStack, args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn("npm", ["run", "--silent", "gc", "--", ...args, "--stack", t.stack.name], {
    cwd: PROJECT_DIR,
    env: { ...process.env, ...t.env, ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<CliRun>((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
  return { child, done };
}

/** `--retain-days`/`--grace` that keep only closures pushed or refreshed in the last `seconds` (and pins). */
export const keepLastSeconds = (seconds: number): string[] => ["--retain-days", (Math.max(0, seconds) / 86_400).toFixed(8), "--grace", "0s"];
