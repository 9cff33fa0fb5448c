// The project's own modules import each other without a circle (the bench once imported the tests' support
// code, which imported the bench back), and the bench, the demo and the tests start MinIO and open stacks only
// through harness/: nothing under tests/ or bench/ is imported by the harness, the program or the scripts.
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..", "..");
const SKIP = new Set(["node_modules", ".git", ".local", "bin", "dist"]);

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (SKIP.has(e.name)) return [];
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith(".ts") && !p.endsWith(".d.ts") ? [p] : [];
  });
}

/** file → the project files it imports (relative imports only). */
function importGraph(): Record<string, string[]> {
  const graph: Record<string, string[]> = {};
  for (const file of sources(ROOT)) {
    const text = fs.readFileSync(file, "utf8");
    graph[file] = [...text.matchAll(/(?:from|import|require\()\s*"(\.{1,2}\/[^"]+)"/g)]
      .map((m) => path.resolve(path.dirname(file), m[1]))
      .map((target) => [`${target}.ts`, path.join(target, "index.ts")].find((c) => fs.existsSync(c)))
      .filter((c): c is string => c !== undefined);
  }
  return graph;
}

const rel = (f: string) => path.relative(ROOT, f);

test("no import cycles among the project's modules", () => {
  const graph = importGraph();
  expect(Object.keys(graph).length).toBeGreaterThan(50);
  const cycles: string[] = [];
  const state: Record<string, "open" | "done"> = {};
  const stack: string[] = [];
  const visit = (file: string) => {
    state[file] = "open";
    stack.push(file);
    for (const next of graph[file] ?? []) {
      if (state[next] === "open") cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(" -> "));
      else if (!state[next]) visit(next);
    }
    stack.pop();
    state[file] = "done";
  };
  for (const file of Object.keys(graph)) if (!state[file]) visit(file);
  expect(cycles).toEqual([]);
});

test("the harness, the program and the scripts never import tests/ or bench/", () => {
  const graph = importGraph();
  const offending = Object.entries(graph)
    .filter(([file]) => !/^(tests|bench)\//.test(rel(file)))
    .flatMap(([file, targets]) => targets.filter((t) => /^(tests|bench)\//.test(rel(t))).map((t) => `${rel(file)} -> ${rel(t)}`));
  expect(offending).toEqual([]);
});

/** Every project file `file` reaches through relative imports, itself included. */
function reachable(graph: Record<string, string[]>, file: string): Set<string> {
  const seen = new Set<string>();
  const walk = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const t of graph[f] ?? []) walk(t);
  };
  walk(file);
  return seen;
}

test("the program side (index.ts, components/, resources/) never loads the provider plugin's code or the MinIO SDK", () => {
  // The plugin (provider/ over providers/) runs in its own process; the program only declares resources, so
  // each `up` and `preview` loads none of the MinIO code.
  const graph = importGraph();
  const program = reachable(graph, path.join(ROOT, "index.ts"));
  expect(program.has(path.join(ROOT, "components", "nixCache.ts"))).toBe(true);
  expect([...program].map(rel).filter((f) => /^(providers|provider)\//.test(f))).toEqual([]);
  const sdkUsers = [...program].filter((f) => /from "minio"|require\("minio"\)/.test(fs.readFileSync(f, "utf8"))).map(rel);
  expect(sdkUsers).toEqual([]);
  // And the check sees such an import: the plugin's entry does reach providers/.
  const plugin = [...reachable(graph, path.join(ROOT, "provider", "main.ts"))].map(rel);
  expect(plugin.filter((f) => f.startsWith("providers/")).length).toBeGreaterThan(3);
});

/**
 * lib/'s rooms by job, lowest first: a group may import its own files and lower groups only, so a reader can
 * take in each room with only what is below it (the GC knows nothing of signing, hosts' texts nothing of verify).
 */
const LIB_LAYERS = ["cli", "s3", "gc", "signing", "config", "minio", "proxy", "hosts", "verify"] as const;

test("lib/ is grouped by domain and its groups import one way (lower groups only), nothing outside lib/", () => {
  const graph = importGraph();
  const libFiles = Object.keys(graph).filter((f) => rel(f).startsWith("lib/"));
  expect(libFiles.length).toBeGreaterThan(20);
  const groupOf = (f: string) => rel(f).split("/")[1];
  // Every lib module sits in a known room (no loose file in lib/ itself).
  expect(libFiles.filter((f) => rel(f).split("/").length !== 3 || !LIB_LAYERS.includes(groupOf(f) as never)).map(rel)).toEqual([]);
  const offending: string[] = [];
  for (const file of libFiles) {
    const own = LIB_LAYERS.indexOf(groupOf(file) as (typeof LIB_LAYERS)[number]);
    for (const target of graph[file]) {
      if (!rel(target).startsWith("lib/")) offending.push(`${rel(file)} -> ${rel(target)} (outside lib/)`);
      else if (LIB_LAYERS.indexOf(groupOf(target) as (typeof LIB_LAYERS)[number]) > own) offending.push(`${rel(file)} -> ${rel(target)} (a higher group)`);
    }
  }
  expect(offending).toEqual([]);
});

test("the layering check sees a violation: a lower group importing a higher one is reported", () => {
  // Guards the check itself: the graph's edges resolve (a regexp typo would make the test above pass on nothing).
  const graph = importGraph();
  const edges = Object.entries(graph).filter(([f]) => rel(f).startsWith("lib/hosts/")).flatMap(([, ts]) => ts.map(rel));
  expect(edges).toContain("lib/config/caCertificate.ts");
});
