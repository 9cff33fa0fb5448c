#!/usr/bin/env bash
# Coming from the chapter: the commands of docs/takeover.md, in order. Run them one by one, or this file as it is
# (bash docs/takeover.sh), in this project's checkout, where the chapter's ~/.config/nix/secret.key and the
# builder's ~/.aws/credentials are, with the toolchain on PATH and a Pulumi backend logged in.
set -euo pipefail

# 1. A stack for the chapter's MinIO (Pulumi.homelab.yaml already names the chapter's key); pulumi asks for the
#    passphrase that encrypts the stack's secrets, then for MinIO's admin password.
pulumi stack init homelab
pulumi config set nix-cache:endpoint https://s3.homelab.local
pulumi config set nix-cache:adminUser minioadmin
pulumi config set --secret nix-cache:adminPassword

# 2. What the chapter made that hosts and the builder hold: the signing key and the builder's password.
pulumi config set --secret --path 'nix-cache:importKeys[0]' "$(cat ~/.config/nix/secret.key)"
builder_password=$(awk -F' *= *' '/^\[/ { section = $0 } section == "[nixbuilder]" && $1 == "aws_secret_access_key" { print $2 }' ~/.aws/credentials)
pulumi config set --secret nix-cache:builderPassword "${builder_password:?no aws_secret_access_key in the [nixbuilder] section of ~/.aws/credentials}"

# 3. The takeover, once: read the preview's takeover: lines, then let up do it.
pulumi config set nix-cache:adopt true
pulumi preview
pulumi up
pulumi config rm nix-cache:adopt
pulumi up

# 4. The checks: the cache as hosts and the builder meet it, no drift, what the first GC would collect.
npm run verify
pulumi preview --refresh --expect-no-changes
npm run gc -- --dry-run

# 5. The hosts' and the builder's configuration from the stack, to deploy at your pace (nothing needs it today).
npm run host-config -- --out ./hosts/nix-cache
