#!/usr/bin/env node
// Builds the library other Pulumi programs import (package.json main/types, docs/library.md):
//   dist/lib/index.js   one esbuild bundle of components/index.ts and everything it imports, @pulumi/pulumi left
//                       to node (a peer dependency: one SDK, the program's), so the package needs no dependency;
//   dist/types/...      tsc's declarations (tsconfig.lib.json), pruned to the files components/index.d.ts reaches.
// Each output is written beside its place and renamed into it: a program starting meanwhile never reads half of it.
// `npm run build` runs it after scripts/build.js (the plugin's bundle), and so does npm's prepare when npm packs the package (scripts/prepare.js).
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");
const { bundleForNode } = require("./build.js");

const root = path.resolve(__dirname, "..");
const bundle = path.join(root, "dist", "lib", "index.js");
const typesDir = path.join(root, "dist", "types");
const typesEntry = path.join("components", "index.d.ts");

const buildBundle = () => bundleForNode(path.join("components", "index.ts"), bundle);

/** The relative modules a declaration file imports or references, as paths of .d.ts files. */
function declarationImports(file) {
  const text = fs.readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from\s+|import\(\s*)"(\.{1,2}\/[^"]+)"|<reference\s+path="([^"]+)"/g)].map((m) => m[1] ?? m[2]);
  return specs.map((s) => {
    const base = path.resolve(path.dirname(file), s.replace(/\.d\.ts$|\.js$/, ""));
    return fs.existsSync(`${base}.d.ts`) ? `${base}.d.ts` : path.join(base, "index.d.ts");
  });
}

function buildTypes() {
  const tmp = `${typesDir}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
  const r = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.lib.json"), "--outDir", tmp], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.lib.json exited ${r.status ?? r.signal}`);
  // Keep what the public entry reaches; tsc also declares every module the bundle holds (the resources, ...).
  const keep = new Set();
  const visit = (file) => {
    if (keep.has(file)) return;
    if (!fs.existsSync(file)) throw new Error(`${path.relative(tmp, file)}: missing, imported by a kept declaration`);
    keep.add(file);
    for (const dep of declarationImports(file)) visit(dep);
  };
  visit(path.join(tmp, typesEntry));
  const prune = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        prune(p);
        if (fs.readdirSync(p).length === 0) fs.rmdirSync(p);
      } else if (!keep.has(p)) {
        fs.rmSync(p);
      }
    }
  };
  prune(tmp);
  const old = `${typesDir}.${process.pid}.old`;
  if (fs.existsSync(typesDir)) fs.renameSync(typesDir, old);
  fs.renameSync(tmp, typesDir);
  fs.rmSync(old, { recursive: true, force: true });
  return keep.size;
}

Promise.all([buildBundle(), Promise.resolve().then(buildTypes)]).then(
  ([, declarations]) =>
    process.stderr.write(
      `buildLib: ${path.relative(root, bundle)} (${fs.statSync(bundle).size} bytes), ${declarations} declaration files in ${path.relative(root, typesDir)}\n`,
    ),
  (err) => {
    process.stderr.write(`buildLib: ${err.message}\n`);
    process.exit(1);
  },
);
