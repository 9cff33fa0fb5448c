#!/usr/bin/env bash
# The GC by hand (docs/operations.md, "Retention: old paths go, closures stay whole"): keep a closure forever,
# see what would go, collect. Run this file (bash docs/gc.sh STOREPATH) in this project's checkout, with the
# toolchain on PATH, the stack's backend logged in, PULUMI_CONFIG_PASSPHRASE set and the stack selected; or type
# the lines one by one, `system=STOREPATH` first. STOREPATH is a path already in the cache, e.g. the laptop's
# system (`readlink /run/current-system` on the laptop).
set -euo pipefail
system=${1:?usage: bash docs/gc.sh STOREPATH (a path in the cache to keep forever)}

npm run gc -- pin laptop "$system"   # keep its closure forever
npm run gc -- pins                   # list the pins
npm run gc -- --dry-run              # what would go; nothing deleted
npm run gc                           # collect (the builder's timer runs this daily)
