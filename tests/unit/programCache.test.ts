// harness/programCache.js: the tests' loader for the program under the engine. It must only act inside Pulumi's
// TypeScript runner, give the program exactly what transpiling gives, and never serve a stale module.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

// Plain JavaScript by design (it runs before anything compiles TypeScript): required as node would.
const programCache = require("../../harness/programCache.js") as {
  isPulumiTypeScriptRun(argv: string[], env: Record<string, string | undefined>): boolean;
};
const HOOK = path.join(__dirname, "..", "..", "harness", "programCache.js");

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-program-cache-test-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs node with `env` and the script `code`; returns its status and output. */
function node(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, args, { cwd: dir, env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("acts only in Pulumi's program runner in TypeScript mode", () => {
  const runner = "/p/node_modules/@pulumi/pulumi/cmd/run";
  expect(programCache.isPulumiTypeScriptRun(["node", runner, "."], { PULUMI_NODEJS_TYPESCRIPT: "true" })).toBe(true);
  expect(programCache.isPulumiTypeScriptRun(["node", runner, "."], { PULUMI_NODEJS_TYPESCRIPT: "false" })).toBe(false);
  expect(programCache.isPulumiTypeScriptRun(["node", runner, "."], {})).toBe(false);
  // The dynamic-provider host, the scripts and anything else that inherits NODE_OPTIONS: left alone.
  expect(programCache.isPulumiTypeScriptRun(["node", "/p/node_modules/@pulumi/pulumi/cmd/dynamic-provider"], { PULUMI_NODEJS_TYPESCRIPT: "true" })).toBe(false);
  expect(programCache.isPulumiTypeScriptRun(["node", "/p/scripts/verify.ts", runner], { PULUMI_NODEJS_TYPESCRIPT: "true" })).toBe(false);
});

test("preloaded into a stand-in of Pulumi's runner: TypeScript mode off, .ts modules (extensionless imports too) served from the cache", () => {
  const runner = path.join(dir, "node_modules", "@pulumi", "pulumi", "cmd", "run");
  fs.mkdirSync(runner, { recursive: true });
  // What the runner does with TypeScript mode off: require the program's entry.
  fs.writeFileSync(path.join(runner, "index.js"), 'console.log(process.env.PULUMI_NODEJS_TYPESCRIPT); require(process.argv[2]);\n');
  fs.writeFileSync(path.join(dir, "b.ts"), "export interface Shape { sides: number }\nexport const square: Shape = { sides: 4 };\n");
  fs.writeFileSync(path.join(dir, "a.ts"), 'import { square, type Shape } from "./b";\nconst s: Shape = square;\nconsole.log(`sides ${s.sides}`);\n');
  const cache = path.join(dir, "cache");
  const env = { NODE_OPTIONS: `--require ${HOOK}`, PULUMI_NODEJS_TYPESCRIPT: "true", NIX_CACHE_PROGRAM_CACHE: cache };

  const first = node([runner, path.join(dir, "a.ts")], env);
  expect(first).toEqual({ status: 0, stdout: "false\nsides 4\n", stderr: "" });
  expect(fs.readdirSync(cache)).toHaveLength(2);

  // An edit is a miss (a new entry), never the old module.
  fs.writeFileSync(path.join(dir, "b.ts"), "export interface Shape { sides: number }\nexport const square: Shape = { sides: 5 };\n");
  expect(node([runner, path.join(dir, "a.ts")], env).stdout).toBe("false\nsides 5\n");
  expect(fs.readdirSync(cache)).toHaveLength(3);

  // Another process that inherits NODE_OPTIONS is left as it is: no .ts loader, TypeScript mode untouched.
  const other = node(["-e", 'console.log(process.env.PULUMI_NODEJS_TYPESCRIPT, typeof require.extensions[".ts"])'], env);
  expect(other).toEqual({ status: 0, stdout: "true undefined\n", stderr: "" });
});

test("the SDK's closure serializer packages load on first use only, and the serializer still works", () => {
  const script = `
    const hook = require(${JSON.stringify(HOOK)});
    const deferred = () => Object.keys(require.cache).filter((k) => /node_modules[\\\\/](typescript|@npmcli[\\\\/]arborist|normalize-package-data)[\\\\/]/.test(k)).length;
    if (process.argv[1] === "defer") hook.deferClosureSerializer();
    const pulumi = require(${JSON.stringify(require.resolve("@pulumi/pulumi"))});
    const atLoad = deferred();
    pulumi.runtime.serializeFunction(() => 42).then((f) => console.log(JSON.stringify({ atLoad, afterUse: deferred(), serialized: f.text.includes("42") })));
  `;
  const parse = (r: { stdout: string }) => JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}");
  const deferredRun = parse(node(["-e", script, "defer"]));
  expect(deferredRun.atLoad).toBe(0);
  expect(deferredRun.afterUse).toBeGreaterThan(0);
  expect(deferredRun.serialized).toBe(true);
  // Without the deferral the SDK loads them at once (what the check above would see if it did nothing).
  expect(parse(node(["-e", script, "plain"])).atLoad).toBeGreaterThan(0);
});
