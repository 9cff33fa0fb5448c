// The tests start the commands directly (tests/support/scriptCommand.ts) with what package.json's npm scripts
// run: if a script moved or gained an argument, the direct start would test something users never run.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SCRIPT_FILES, scriptCommand } from "../support/scriptCommand";

const scripts = (JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

test.each(Object.entries(SCRIPT_FILES))("npm run %s runs node with ts-node on %s and nothing else; the tests start the same file directly", (name, file) => {
  expect(scripts[name]).toBe(`bash scripts/with-toolchain.sh node -r ts-node/register/transpile-only ${file}`);
  const direct = scriptCommand(name as keyof typeof SCRIPT_FILES, ["--stack", "s"]);
  expect(direct.file).toBe(process.execPath);
  expect(direct.args.slice(-3)).toEqual([path.join(__dirname, "..", "..", file), "--stack", "s"]);
  expect(direct.args[0]).toBe("-r");
  // The tests' transpile cache in ts-node's place (harness/commandLoader.js); it reads the project's tsconfig.json
  // from any directory.
  expect(direct.args[1]).toBe(path.join(__dirname, "..", "..", "harness", "commandLoader.js"));
  expect(direct.env).toEqual({ INIT_CWD: path.join(__dirname, "..", "..") });
  // Typed elsewhere: relative paths are the user's (npm's INIT_CWD), whatever the environment it started in.
  const elsewhere = scriptCommand(name as keyof typeof SCRIPT_FILES, [], "node", "/home/me");
  expect([elsewhere.cwd, elsewhere.env.INIT_CWD]).toEqual(["/home/me", "/home/me"]);
  expect(scriptCommand(name as keyof typeof SCRIPT_FILES, ["-h"], "npm").args.slice(-4)).toEqual(["--silent", name, "--", "-h"]);
});

test("a command started through the tests' loader runs the same program: --help and a bad option give what ts-node gives", () => {
  const run = (c: ReturnType<typeof scriptCommand>) => spawnSync(c.file, c.args, { cwd: c.cwd, env: { ...process.env, ...c.env }, encoding: "utf8", timeout: 60_000 });
  for (const name of ["gc", "verify"] as const) {
    const direct = run(scriptCommand(name, ["--help"]));
    const viaTsNode = spawnSync(process.execPath, ["-r", require.resolve("ts-node/register/transpile-only"), path.join(__dirname, "..", "..", SCRIPT_FILES[name]), "--help"], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, TS_NODE_PROJECT: path.join(__dirname, "..", "..", "tsconfig.json") },
    });
    expect([direct.status, direct.stdout]).toEqual([0, viaTsNode.stdout]);
    expect(direct.stdout).toMatch(new RegExp(`^usage: npm run ${name}`));
    const bad = run(scriptCommand(name, ["--no-such-option"]));
    expect(bad.status).toBe(2);
  }
});
