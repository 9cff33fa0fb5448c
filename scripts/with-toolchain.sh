#!/usr/bin/env bash
# Runs a command with the project's toolchain first on PATH (pulumi, its nodejs language host, the
# dynamic-provider launcher, minio, Node 24), installing whatever is missing first, and the npm packages.
# Usage: scripts/with-toolchain.sh [--nix] COMMAND [ARG ...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
toolchain_args=()
if [[ "${1:-}" == "--nix" ]]; then toolchain_args+=(--nix); shift; fi

bin=$(bash "$root/toolchain/toolchain.sh" "${toolchain_args[@]}" | tail -n 1)
export PATH="$bin:$root/node_modules/.bin:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1

# npm packages: install when package-lock.json changed since the last install.
stamp="$root/node_modules/.nix-cache-installed"
if [[ ! -f "$stamp" || "$root/package-lock.json" -nt "$stamp" ]]; then
  echo "with-toolchain: installing npm packages" >&2
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi
exec "$@"
