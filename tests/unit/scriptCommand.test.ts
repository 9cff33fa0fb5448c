// The tests start the commands directly (tests/support/scriptCommand.ts) with what package.json's npm scripts
// run: if a script moved or gained an argument, the direct start would test something users never run.
import * as fs from "fs";
import * as path from "path";
import { SCRIPT_FILES, scriptCommand } from "../support/scriptCommand";

const scripts = (JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

test.each(Object.entries(SCRIPT_FILES))("npm run %s runs node with ts-node on %s and nothing else", (name, file) => {
  expect(scripts[name]).toBe(`bash scripts/with-toolchain.sh node -r ts-node/register/transpile-only ${file}`);
  const direct = scriptCommand(name as keyof typeof SCRIPT_FILES, ["--stack", "s"]);
  expect(direct.file).toBe(process.execPath);
  expect(direct.args.slice(-3)).toEqual([path.join(__dirname, "..", "..", file), "--stack", "s"]);
  expect(direct.args[0]).toBe("-r");
  expect(direct.args[1]).toMatch(/ts-node\/register\/transpile-only\.js$/);
  // Started from any directory, ts-node still compiles with the project's settings (npm starts it in the project).
  expect(direct.env).toEqual({ TS_NODE_PROJECT: path.join(__dirname, "..", "..", "tsconfig.json"), INIT_CWD: path.join(__dirname, "..", "..") });
  // Typed elsewhere: relative paths are the user's (npm's INIT_CWD), whatever the environment it started in.
  const elsewhere = scriptCommand(name as keyof typeof SCRIPT_FILES, [], "node", "/home/me");
  expect([elsewhere.cwd, elsewhere.env.INIT_CWD]).toEqual(["/home/me", "/home/me"]);
  expect(scriptCommand(name as keyof typeof SCRIPT_FILES, ["-h"], "npm").args.slice(-4)).toEqual(["--silent", name, "--", "-h"]);
});
