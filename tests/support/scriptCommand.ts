// How the tests start the project's commands. `npm run NAME` is npm, then scripts/with-toolchain.sh (the
// toolchain and npm-package check), then node with ts-node on scripts/NAME.ts. The tests already run under
// with-toolchain, so they start that last step directly: the same program with the same arguments, a second or
// more sooner. One test per command still goes through `npm run`, so the npm entry itself stays proven.
import * as path from "path";
import { PROJECT_DIR } from "../../harness/stack";

/** The project's commands and their script files (package.json "scripts"). */
export const SCRIPT_FILES = {
  verify: "scripts/verify.ts",
  gc: "scripts/gc.ts",
  resign: "scripts/resign.ts",
  "host-config": "scripts/hostConfig.ts",
} as const;
export type ScriptName = keyof typeof SCRIPT_FILES;

/** How to start a command: through npm (as documented) or node directly (what npm ends up running). */
export type Via = "npm" | "node";

/** The program and arguments that run `npm run NAME -- ARGS`, through npm or directly. */
export function scriptCommand(name: ScriptName, args: readonly string[], via: Via = "node"): { file: string; args: string[] } {
  if (via === "npm") return { file: "npm", args: ["--prefix", PROJECT_DIR, "run", "--silent", name, "--", ...args] };
  return {
    file: process.execPath,
    args: ["-r", require.resolve("ts-node/register/transpile-only"), path.join(PROJECT_DIR, SCRIPT_FILES[name]), ...args],
  };
}
