// The tests' way to run this project's TypeScript program under the engine without ts-node: preloaded into the
// program's node process (NODE_OPTIONS=--require, set by harness/stack.ts for test stacks), it turns Pulumi's
// TypeScript mode off and loads each .ts module from a content-addressed cache of its transpiled JavaScript,
// transpiling (with the project's typescript and tsconfig.json) only on a miss. Each `up` and `preview` then skips
// loading the TypeScript compiler, transpiling every module again and the source-map support ts-node installs
// (measured on a deployed demo stack: preview 5.4 s instead of 6.3 s, 19% less CPU). The program is the same: same
// source files, same transpiler output. Users' `pulumi up`, the demo and the bench run the ordinary way (ts-node).
// Plain JavaScript: it runs before anything could compile TypeScript.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");

const PROJECT_DIR = path.resolve(__dirname, "..");

/** Is this node process Pulumi's program runner (@pulumi/pulumi/cmd/run) in TypeScript mode? */
function isPulumiTypeScriptRun(argv, env) {
  const runner = path.join("@pulumi", "pulumi", "cmd", "run");
  return env.PULUMI_NODEJS_TYPESCRIPT === "true" && argv.slice(1, 2).some((a) => a.includes(runner));
}

/** The transpiler's settings: the project's tsconfig.json as ts-node reads it, in CommonJS. */
function compilerOptions(ts) {
  const file = path.join(PROJECT_DIR, "tsconfig.json");
  const read = ts.readConfigFile(file, ts.sys.readFile);
  if (read.error) throw new Error(`programCache: ${file}: ${ts.flattenDiagnosticMessageText(read.error.messageText, "\n")}`);
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, PROJECT_DIR);
  return { ...parsed.options, module: ts.ModuleKind.CommonJS, sourceMap: false, inlineSourceMap: false, declaration: false };
}

/**
 * Registers the .ts loader. The cache key covers the file's path and text, tsconfig.json and the typescript
 * version, so an edit anywhere is a miss, never a stale module. Writes go through a rename: two engine runs at
 * once never read half a file.
 */
function install(cacheDir) {
  fs.mkdirSync(cacheDir, { recursive: true });
  const tsPackage = require.resolve("typescript/package.json", { paths: [PROJECT_DIR] });
  const salt = [fs.readFileSync(path.join(PROJECT_DIR, "tsconfig.json"), "utf8"), JSON.parse(fs.readFileSync(tsPackage, "utf8")).version].join("\0");
  let ts;
  let options;
  require.extensions[".ts"] = function loadTs(module, filename) {
    const source = fs.readFileSync(filename, "utf8");
    const key = crypto.createHash("sha256").update(`${filename}\0${source}\0${salt}`).digest("hex");
    const cached = path.join(cacheDir, `${key}.js`);
    let js;
    try {
      js = fs.readFileSync(cached, "utf8");
    } catch {
      ts = ts || require(require.resolve("typescript", { paths: [PROJECT_DIR] }));
      options = options || compilerOptions(ts);
      js = ts.transpileModule(source, { compilerOptions: options, fileName: filename }).outputText;
      const tmp = `${cached}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, js);
      fs.renameSync(tmp, cached);
    }
    module._compile(js, filename);
  };
}

/**
 * Pulumi's SDK loads its closure serializer's packages (typescript, @npmcli/arborist and what it pulls in) when
 * the SDK loads, ~0.4 s of CPU per engine run; only dynamic providers serialize closures, and this project has
 * none. The program gets them on first use instead: the same modules, loaded only if something touches them.
 */
const DEFERRED = {
  typescript: /[\\/]@pulumi[\\/]pulumi[\\/]typescript-shim\.js$/,
  "@npmcli/arborist": /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]codePaths\.js$/,
  "normalize-package-data": /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]codePaths\.js$/,
};

function deferClosureSerializer() {
  const Module = require("module");
  const load = Module.prototype.require;
  Module.prototype.require = function requireDeferred(id) {
    const from = DEFERRED[id];
    if (!from || !from.test(this.filename || "")) return load.apply(this, arguments);
    const parent = this;
    let real;
    const get = () => (real = real || load.call(parent, id));
    // Stand-ins of the shape each user reads at load time (codePaths.js copies the module's keys, or wraps it as
    // a default export); each loads the real module on its first use.
    if (id === "@npmcli/arborist") return { Arborist: function Arborist(...args) { return new (get().Arborist)(...args); } };
    if (id === "normalize-package-data") return function normalize(...args) { return get()(...args); };
    return new Proxy({}, {
      get: (_, key) => get()[key],
      has: (_, key) => key in get(),
      ownKeys: () => Reflect.ownKeys(get()),
      getOwnPropertyDescriptor: (_, key) => {
        const d = Object.getOwnPropertyDescriptor(get(), key);
        return d && { ...d, configurable: true };
      },
    });
  };
}

/** The cache directory: NIX_CACHE_PROGRAM_CACHE, else one per user under the temp directory. */
function cacheDirOf(env) {
  return env.NIX_CACHE_PROGRAM_CACHE || path.join(os.tmpdir(), `nix-cache-program-cache-${os.userInfo().uid}`);
}

if (isPulumiTypeScriptRun(process.argv, process.env)) {
  // Pulumi's runner reads this after the preload: it then registers no ts-node and requires index.ts, which
  // the loader above serves.
  process.env.PULUMI_NODEJS_TYPESCRIPT = "false";
  install(cacheDirOf(process.env));
  deferClosureSerializer();
}

module.exports = { install, isPulumiTypeScriptRun, cacheDirOf, deferClosureSerializer };
