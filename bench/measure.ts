// The bench's figures: wall times of whole commands, their medians and the ratio of two of them.
import { execFile } from "child_process";
import { PROJECT_DIR } from "../harness/stack";

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Runs a command, returns its wall time in seconds; fails with its output if it fails. */
export function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = PROJECT_DIR): Promise<{ seconds: number; stdout: string }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ seconds, stdout });
    });
  });
}

export const fmt = (s: number) => `${s.toFixed(2)} s`;

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The median of the per-run differences a[i] − b[i] of two series measured side by side (run i of each
 *  next to the other), which cancels more of the machine's drift than the difference of the medians. */
export function pairedDifference(a: number[], b: number[]): number {
  if (a.length !== b.length) throw new Error(`paired series differ in length: ${a.length} vs ${b.length}`);
  return median(a.map((x, i) => x - b[i]));
}

/** One figure: name, the two medians, the ratio last. */
export function report(name: string, a: string, aSec: number[], b: string, bSec: number[]): void {
  const ratio = median(aSec) / median(bSec);
  console.log(`${name}: ${a} ${fmt(median(aSec))} | ${b} ${fmt(median(bSec))} | ratio ${ratio.toFixed(2)}`);
}
