// `npm run gc` as an operator runs it, for the integration and end-to-end tests: a child process reading the
// stack through the pulumi CLI, in a process group of its own so a test can kill it whole (npm and node).
// Started directly unless `via` is "npm" (tests/support/scriptCommand.ts).
import { ChildProcess, spawn } from "child_process";
import { TestStack } from "../../harness/stack";
import { scriptCommand, Via } from "./scriptCommand";

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function startGcCli(
  t: TestStack,
  args: string[],
  env: Record<string, string> = {},
  via: Via = "node",
): { child: ChildProcess; done: Promise<CliRun> } {
  const command = scriptCommand("gc", [...args, "--stack", t.stack.name], via);
  const child = spawn(command.file, command.args, {
    cwd: command.cwd,
    env: { ...process.env, ...command.env, ...t.env, ...env },
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

/** `--retain-since`/`--grace` that keep only closures pushed or refreshed at or after `sinceMs` (and pins), however
 *  late the GC starts: a fixed time, never a duration counted from a guessed start. */
export const keptSince = (sinceMs: number): string[] => ["--retain-since", new Date(sinceMs).toISOString(), "--grace", "0s"];
