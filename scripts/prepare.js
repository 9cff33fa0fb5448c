#!/usr/bin/env node
// npm's `prepare`: builds what the package ships (the plugin's bundle, scripts/build.js; the library,
// scripts/buildLib.js) when npm packs it: `npm pack` here, or a program installing this repository as a git
// dependency (npm clones it, installs its devDependencies, runs prepare in the clone, then packs the clone: npm
// runs no prepack there). A plain `npm ci` or `npm install` in a checkout builds nothing: the plugin's launcher
// rebuilds its bundle when a source is newer, and the library's build is for packing only.
"use strict";
const { spawnSync } = require("child_process");
const path = require("path");

const root = path.resolve(__dirname, "..");
const packing = ["pack", "publish"].includes(process.env.npm_command ?? "");
const installedHere = process.env.INIT_CWD !== undefined && path.resolve(process.env.INIT_CWD) === root;
if (installedHere && !packing) process.exit(0);
for (const script of ["build.js", "buildLib.js"]) {
  const r = spawnSync(process.execPath, [path.join(__dirname, script)], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
