#!/usr/bin/env bash
# Runs a command with the project's toolchain first on PATH (pulumi, its nodejs language host, the
# dynamic-provider launcher, minio, Node), installing whatever is missing first, and the npm packages.
# Usage: scripts/with-toolchain.sh [--nix] COMMAND [ARG ...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain_args=()
if [[ "${1:-}" == "--nix" ]]; then toolchain_args+=(--nix); shift; fi

# npm packages: installed when package-lock.json changed since the last install, in the background while the
# toolchain is checked or built (they need nothing from it: the only install script is protobufjs's, plain JS).
# --include=dev: they are all devDependencies (the package bundles what it runs), kept under NODE_ENV=production too.
stamp="$root/node_modules/.nix-cache-installed"
npm_pid=""
if [[ ! -f "$stamp" || "$root/package-lock.json" -nt "$stamp" ]]; then
  echo "with-toolchain: installing npm packages" >&2
  npm_log=$(mktemp "${TMPDIR:-/tmp}/nix-cache-npm.XXXXXX")
  (cd "$root" && npm ci --include=dev --no-audit --no-fund --loglevel=error --engine-strict=false) >"$npm_log" 2>&1 &
  npm_pid=$!
fi

# ${a[@]+"${a[@]}"}: an empty array is "unbound" under set -u in bash before 4.4 (macOS's /bin/bash is 3.2).
bin=$(bash "$root/toolchain/toolchain.sh" ${toolchain_args[@]+"${toolchain_args[@]}"} | tail -n 1)
export PATH="$bin:$root/node_modules/.bin:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1

if [[ -n "$npm_pid" ]]; then
  if ! wait "$npm_pid"; then
    cat "$npm_log" >&2
    echo "with-toolchain: npm ci failed (its output is above)" >&2
    exit 2
  fi
  rm -f "$npm_log"
  touch "$stamp"
fi
exec "$@"
