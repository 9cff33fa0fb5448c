// The builder's GC script (nix-cache-gc.js): lib/gc/service.ts and every lib/ module it imports, bundled by
// esbuild (CommonJS, node 18) into ONE file that plain `node` runs with no node_modules, as the builder module's
// nix-cache-gc.service does. Every package is left external, so esbuild's metafile names each import the script
// would ask node for: anything but a node built-in (an npm package) would only fail on the builder, at 3 a.m.,
// so gcScriptText throws here instead, naming the module and the package.
// Runs where host-config and examples/host-stack run (esbuild is a dependency); the script itself needs none of it.
// bundleScript does the same for another host's entry (the read proxy's, lib/proxy/bundle.ts), with its own words.
import { buildSync, Message, Metafile, stop } from "esbuild";
import { isBuiltin } from "module";
import * as path from "path";

/** The entry, relative to lib/. */
export const GC_ENTRY = "gc/service";

/** What a bundled script is, for its header and its refusals. */
export interface ScriptSpec {
  /** The entry, relative to lib/, no extension. */
  entry: string;
  /** The file the host runs: nix-cache-gc.js. */
  fileName: string;
  /** The header's first words after `FILE: ` (may run onto a second `// ` line). */
  about: string;
  /** What its errors start with: "gc bundle". */
  label: string;
  /** Who runs it: "the builder". */
  host: string;
  /** What the host calls it: "GC script". */
  scriptName: string;
  /** Whose modules must stay built-ins only: "the GC". */
  owner: string;
}

export const GC_SCRIPT: ScriptSpec = {
  entry: GC_ENTRY,
  fileName: "nix-cache-gc.js",
  about: "the nix-cache builder's closure-safe GC (nix-cache-gc.service runs `node nix-cache-gc.js [ARGS]`;\n// --help says what it reads)",
  label: "gc bundle",
  host: "the builder",
  scriptName: "GC script",
  owner: "the GC",
};

/** What the script is made of: its lib/ modules (relative to lib/, no extension; the entry first, then sorted). */
export interface GcBundle {
  text: string;
  modules: string[];
  /** The node built-ins it requires, sorted, each once. */
  builtins: string[];
}

/** True when a metafile path (relative to lib/) is a .ts module inside lib/, not a package's file. */
const isLibModule = (file: string) =>
  file.endsWith(".ts") && !file.startsWith("../") && !path.isAbsolute(file) && !file.split("/").includes("node_modules");

/**
 * The bundle's modules and built-ins from esbuild's metafile (paths relative to lib/). Throws naming the module
 * and the package for a package the script would require (an import used only for types is erased: it is among
 * the inputs' imports but not the output's), and for an import that resolved to a file outside lib/ or to no .ts
 * module.
 */
export function checkMetafile(metafile: Metafile, entry = GC_ENTRY, spec: ScriptSpec = GC_SCRIPT): Pick<GcBundle, "modules" | "builtins"> {
  const required = new Set(Object.values(metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path)));
  const pkg = [...required].find((spec) => !isBuiltin(spec));
  if (pkg !== undefined) {
    const importer = Object.entries(metafile.inputs).find(([, input]) => input.imports.some((i) => i.external && i.path === pkg))?.[0];
    throw new Error(
      `${spec.label}: ${importer === undefined ? "the bundle" : `lib/${importer}`} imports the package '${pkg}', which ${spec.host} does not have ` +
        `(its ${spec.scriptName} runs with plain node and no node_modules): keep ${spec.owner}'s modules to node built-ins and each other`,
    );
  }
  for (const [file, input] of Object.entries(metafile.inputs)) {
    const stray = input.imports.find((i) => !i.external && !isLibModule(i.path));
    if (stray !== undefined) {
      throw new Error(
        `${spec.label}: lib/${file} imports '${stray.original ?? stray.path}', which is no .ts module under lib/ (${spec.host}'s ${spec.scriptName} bundles only lib/ modules)`,
      );
    }
  }
  const others = Object.keys(metafile.inputs).filter((f) => f !== `${entry}.ts`);
  return { modules: [entry, ...others.map((f) => f.slice(0, -".ts".length)).sort()], builtins: [...required].sort() };
}

const isBuildFailure = (err: unknown): err is Error & { errors: Message[] } =>
  typeof err === "object" && err !== null && "errors" in err && Array.isArray(err.errors) && err.errors.length > 0;

/** esbuild's first error as one line: where (relative to lib/) and what. */
function failure(err: Error & { errors: Message[] }, label: string): Error {
  const [first] = err.errors;
  const where = first.location ? `lib/${first.location.file}:${first.location.line}` : "lib/";
  return new Error(`${label}: ${where}: ${first.text}`);
}

/** esbuild's bundle of `libDir`/`entry`.ts, readable (not minified), with its metafile; a failure as one line. */
function build(libDir: string, entry: string, label: string) {
  try {
    return buildSync({
      entryPoints: [`${entry}.ts`],
      absWorkingDir: libDir,
      bundle: true,
      platform: "node",
      format: "cjs",
      // nixpkgs' nodejs is 18 or newer; the text stays UTF-8 (the messages' ≥) rather than \u escapes.
      target: "node18",
      charset: "utf8",
      packages: "external",
      metafile: true,
      write: false,
      logLevel: "silent",
      // Not the repository's tsconfig.json: the same output wherever lib/ is copied.
      tsconfigRaw: { compilerOptions: { alwaysStrict: true, useDefineForClassFields: true } },
    });
  } catch (err) {
    throw isBuildFailure(err) ? failure(err, label) : err;
  } finally {
    // buildSync leaves esbuild's service (a worker thread and an esbuild process) up for more builds: none come.
    void stop();
  }
}

/**
 * The script: a header saying what it is, then the bundle. The entry's code sits at the bundle's top level, so
 * its `require.main === module` holds when node runs the script and not when something requires it.
 */
export function bundleScript(libDir: string, spec: ScriptSpec, entry = spec.entry): GcBundle {
  const result = build(libDir, entry, spec.label);
  const { modules, builtins } = checkMetafile(result.metafile, entry, spec);
  const header = [
    `// ${spec.fileName}: ${spec.about}. Generated by lib/gc/bundle.ts (esbuild) from the nix-cache project's lib/ modules`,
    `// (${modules.map((m) => `${m}.ts`).join(", ")}); do not edit.`,
  ];
  const body = result.outputFiles[0].text.replace(/\s+$/, "");
  return { text: `${header.join("\n")}\n${body}\n`, modules, builtins };
}

/** The builder's GC script (bundleScript with GC_SCRIPT); `entry` for tests. */
export function bundleGc(libDir: string, entry = GC_ENTRY): GcBundle {
  return bundleScript(libDir, GC_SCRIPT, entry);
}

let cached: string | undefined;

/** The builder's GC script: lib/gc/service.ts and what it imports, in one file (computed once per process). */
export function gcScriptText(): string {
  cached ??= bundleGc(path.join(__dirname, "..")).text;
  return cached;
}
