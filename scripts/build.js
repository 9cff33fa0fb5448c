#!/usr/bin/env node
// Builds the provider plugin's bundle dist/provider.js from provider/main.ts with esbuild: our code and the
// MinIO SDK in one file (fast to start, nothing to resolve), @pulumi/pulumi left to node (the SDK the engine
// talks to, one copy with the program's). Writes through a rename: a plugin starting meanwhile never reads half a
// file. Run by bin/pulumi-resource-nix-cache when a source is newer than the bundle; `npm run build` forces it.
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const out = path.join(root, "dist", "provider.js");

/**
 * Bundles `entry` (a path under the project) into `outfile` for node, @pulumi/pulumi left to node (one SDK, the
 * program's), written beside its place and renamed into it. scripts/buildLib.js bundles the library with it too.
 */
async function bundleForNode(entry, outfile) {
  const esbuild = require("esbuild");
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  const tmp = `${outfile}.${process.pid}.tmp`;
  await esbuild.build({
    entryPoints: [path.join(root, entry)],
    outfile: tmp,
    bundle: true,
    platform: "node",
    target: "node22",
    format: "cjs",
    external: ["@pulumi/pulumi", "@pulumi/pulumi/*"],
    logLevel: "warning",
    legalComments: "none",
  });
  fs.renameSync(tmp, outfile);
}

if (require.main === module) {
  bundleForNode(path.join("provider", "main.ts"), out).then(
    () => process.stderr.write(`build: ${path.relative(root, out)} (${fs.statSync(out).size} bytes)\n`),
    (err) => {
      process.stderr.write(`build: ${err.message}\n`);
      process.exit(1);
    },
  );
}

module.exports = { bundleForNode };
