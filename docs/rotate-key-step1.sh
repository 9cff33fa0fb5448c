#!/usr/bin/env bash
# Key rotation, step 1 of docs/operations.md ("Rotate the signing key"): a new active key, the old one kept.
# Type the lines one by one, or run this file as it is (bash docs/rotate-key-step1.sh) in this project's
# checkout, with the toolchain on PATH, the stack's backend logged in and PULUMI_CONFIG_PASSPHRASE set. It acts
# on the selected stack (`pulumi stack select NAME` first). Put your key names in place of these.
set -euo pipefail

pulumi config set nix-cache:keyName s3.homelab.local-2                       # the new, active key
pulumi config set --path 'nix-cache:previousKeyNames[0]' s3.homelab.local-1  # the old one, kept
pulumi up            # the old key is kept byte for byte; a new one is made
npm run resign       # adds a signature by every key to every narinfo already in the cache
npm run host-config -- --out ~/nixos-config/nix-cache --secrets-dir ~/nix-cache-secrets
