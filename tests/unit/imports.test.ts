// The project's own modules import each other without a circle (the bench once imported the tests' support
// code, which imported the bench back), and the bench, the demo and the tests start MinIO and open stacks only
// through harness/: nothing under tests/ or bench/ is imported by the harness, the program or the scripts.
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..", "..");
const SKIP = new Set(["node_modules", ".git", ".local", "bin"]);

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
