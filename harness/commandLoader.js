// The tests' way to start the project's commands (scripts/*.ts) without ts-node: preloaded with `node -r`, it
// registers harness/programCache.js's .ts loader, which serves each module from the content-addressed cache of
// its transpiled JavaScript (the same transpiler and tsconfig.json as ts-node's transpile-only mode). A command
// then starts in ~0.1 s of CPU instead of ~1.5 s (ts-node loads the TypeScript compiler on every start).
// Users start the commands with `npm run NAME`, which uses ts-node; one test per command still does.
// Plain JavaScript: it runs before anything could compile TypeScript.
"use strict";
const { install, cacheDirOf } = require("./programCache.js");

install(cacheDirOf(process.env));
