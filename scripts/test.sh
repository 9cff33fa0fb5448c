#!/usr/bin/env bash
# The project's test command (`npm test`): installs what is missing, then runs every jest suite
# (tests/unit, tests/integration, tests/e2e) on Node 24. Extra arguments go to jest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec bash "$root/scripts/with-toolchain.sh" --nix node "$root/node_modules/jest/bin/jest.js" --ci "$@"
