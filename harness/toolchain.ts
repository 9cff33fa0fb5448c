// Test helpers must fail, never skip, when a part of the toolchain is missing.
import { execFileSync } from "child_process";

/** The absolute path of `tool` on PATH, or an error that says how to install it. */
export function requireTool(tool: string, hint = "run the tests with `npm test`, which installs the toolchain first"): string {
  try {
    return execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(`'${tool}' is not on PATH: ${hint}`);
  }
}
