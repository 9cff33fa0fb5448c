#!/usr/bin/env bash
# Key rotation, step 2 of docs/operations.md ("Rotate the signing key"): the old key retired, once it is safe.
# Type the lines one by one, or run this file as it is (bash docs/rotate-key-step2.sh), as step 1's file: in
# this project's checkout, with the toolchain on PATH, the stack's backend logged in, PULUMI_CONFIG_PASSPHRASE
# set and the stack selected.
set -euo pipefail

pulumi config rm nix-cache:previousKeyNames    # or remove just that name from the list
pulumi up           # hosts now trust only the new key; the builder signs with it alone
npm run host-config -- --out ~/nixos-config/nix-cache --secrets-dir ~/nix-cache-secrets
