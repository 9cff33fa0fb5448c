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

async function build() {
  const esbuild = require("esbuild");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  await esbuild.build({
    entryPoints: [path.join(root, "provider", "main.ts")],
    outfile: tmp,
    bundle: true,
    platform: "node",
    target: "node22",
    format: "cjs",
    external: ["@pulumi/pulumi", "@pulumi/pulumi/*"],
    logLevel: "warning",
    legalComments: "none",
  });
  fs.renameSync(tmp, out);
}

build().then(
  () => process.stderr.write(`build: ${path.relative(root, out)} (${fs.statSync(out).size} bytes)\n`),
  (err) => {
    process.stderr.write(`build: ${err.message}\n`);
    process.exit(1);
  },
);
