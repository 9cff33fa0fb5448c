// How the tests start the project's commands. `npm run NAME` is npm, then scripts/with-toolchain.sh (the
// toolchain and npm-package check), then node with ts-node on scripts/NAME.ts. The tests already run under
// with-toolchain, so they start that last step directly: the same program with the same arguments, a second or
// more sooner, its TypeScript served by the tests' transpile cache (harness/commandLoader.js) instead of ts-node.
// One test per command still goes through `npm run`, so the npm entry and ts-node themselves stay proven.
import * as path from "path";
import { PROJECT_DIR } from "../../harness/stack";

/** The project's commands and their script files (package.json "scripts"). */
export const SCRIPT_FILES = {
  verify: "scripts/verify.ts",
  gc: "scripts/gc.ts",
  resign: "scripts/resign.ts",
  "host-config": "scripts/hostConfig.ts",
  proxy: "scripts/proxy.ts",
} as const;
export type ScriptName = keyof typeof SCRIPT_FILES;

/** How to start a command: through npm (as documented) or node directly (what npm ends up running). */
export type Via = "npm" | "node";

/** A command to start: program, arguments, the directory to start it in, and what it adds to the environment. */
export interface ScriptCommand {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
}

/**
 * The program and arguments that run `npm run NAME -- ARGS` typed in `cwd`, through npm or directly. Directly,
 * the environment says what npm's would: INIT_CWD, the directory the command was typed in (relative paths are
 * taken from there). The loader reads the project's tsconfig.json wherever the command starts (npm runs scripts
 * from the project directory; a test may start one from anywhere).
 */
export function scriptCommand(name: ScriptName, args: readonly string[], via: Via = "node", cwd = PROJECT_DIR): ScriptCommand {
  if (via === "npm") return { file: "npm", args: ["--prefix", PROJECT_DIR, "run", "--silent", name, "--", ...args], cwd, env: {} };
  return {
    file: process.execPath,
    cwd,
    args: ["-r", path.join(PROJECT_DIR, "harness", "commandLoader.js"), path.join(PROJECT_DIR, SCRIPT_FILES[name]), ...args],
    env: { INIT_CWD: cwd },
  };
}
