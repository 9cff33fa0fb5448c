#!/usr/bin/env bash
# The project's test command (`npm test`): installs what is missing (toolchain, npm packages, Debian's Nix and
# shellcheck), then type-checks everything (tsc, strict) while jest runs every suite (tests/unit,
# tests/integration, tests/e2e) on Node 24, and ends with the 10 slowest test files, one summary line per suite
# folder and a total. Extra arguments go to jest (e.g. a test file path); the type check then is skipped.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
results=$(mktemp -t nix-cache-jest-XXXXXX.json)
typecheck_log=$(mktemp -t nix-cache-tsc-XXXXXX.log)
trap 'rm -f "$results" "$typecheck_log"' EXIT
status=0
# V8's code cache for every node process the tests start (the program under the engine, the dynamic providers,
# the commands): each loads @pulumi/pulumi, grpc and protobuf again, and compiling them was ~0.4 s of CPU per
# engine run (measured with --cpu-prof). Keyed by file content and V8 version; node checks each entry.
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-cache-tools/node-compile-cache}"
# Everything installed once, up front: the type check and jest below then find it and install nothing.
bash "$root/scripts/with-toolchain.sh" --nix true
typecheck_pid=""
if [[ $# -eq 0 ]]; then
  echo "test: type checking (tsc, strict) beside the tests" >&2
  # tsc needs one core for about half a minute; the engine runs of the integration tests leave that much idle.
  bash "$root/scripts/with-toolchain.sh" sh -c "cd '$root' && tsc --noEmit -p tsconfig.check.json && tsc --noEmit -p examples/host-stack" \
    >"$typecheck_log" 2>&1 &
  typecheck_pid=$!
fi
bash "$root/scripts/with-toolchain.sh" --nix node "$root/node_modules/jest/bin/jest.js" --ci \
  --json --outputFile="$results" "$@" || status=$?
if [[ -n "$typecheck_pid" ]]; then
  if wait "$typecheck_pid"; then
    echo "test: type check passed"
  else
    cat "$typecheck_log"
    echo "test: type check failed (tsc's errors are above)"
    status=1
  fi
fi
if [[ -s "$results" ]]; then
  node -e '
    const r = require(process.argv[1]);
    const by = {};
    for (const f of r.testResults) {
      const kind = (f.name.match(/tests\/(\w+)\//) || [, "other"])[1];
      const k = (by[kind] ||= { passed: 0, failed: 0, skipped: 0 });
      for (const t of f.assertionResults) {
        if (t.status === "passed") k.passed++;
        else if (t.status === "failed") k.failed++;
        else k.skipped++;
      }
    }
    // The slowest files: where the next minute of the run is to be won.
    const slowest = r.testResults
      .map((f) => ({ file: require("path").relative(process.argv[2], f.name), seconds: (f.endTime - f.startTime) / 1000 }))
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, 10);
    console.log("slowest test files:");
    for (const s of slowest) console.log(`  ${s.seconds.toFixed(1).padStart(7)} s  ${s.file}`);
    console.log(`wall time: ${((Date.now() - r.startTime) / 1000 / 60).toFixed(1)} min for the jest run`);
    for (const [kind, k] of Object.entries(by)) console.log(`  ${kind}: ${k.passed} passed, ${k.failed} failed, ${k.skipped} skipped`);
    console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  ' "$results" "$root"
fi
exit "$status"
