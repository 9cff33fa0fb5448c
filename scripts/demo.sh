#!/usr/bin/env bash
# The embedded local default: a MinIO on 127.0.0.1 with its data and generated root credentials under .local/,
# a file:// Pulumi backend there, and stack `local` of this project deployed on it.
#   demo.sh up        start MinIO (if not running), pulumi up, print the outputs
#   demo.sh down      stop the MinIO server (its data stays under .local/)
#   demo.sh pulumi …  run any pulumi command on the demo stack (e.g. stack output --show-secrets)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.local"
port=${NIX_CACHE_DEMO_PORT:-9000}
endpoint="http://127.0.0.1:$port"
pidfile="$state/minio.pid"
log() { printf 'demo: %s\n' "$*" >&2; }

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

pulumi_env() {
  mkdir -p "$state/backend" "$state/pulumi-home"
  [[ -f "$state/passphrase" ]] || (umask 077 && head -c 24 /dev/urandom | base64 > "$state/passphrase")
  export PULUMI_BACKEND_URL="file://$state/backend"
  export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
  export PULUMI_HOME="$state/pulumi-home"
  export PULUMI_SKIP_UPDATE_CHECK=1
  export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1
}

start_minio() {
  mkdir -p "$state/minio-data"
  if [[ ! -f "$state/minio-credentials" ]]; then
    (umask 077 && printf 'MINIO_ROOT_USER=nixcacheadmin\nMINIO_ROOT_PASSWORD=%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" \
      > "$state/minio-credentials")
  fi
  if running; then
    log "MinIO already running at $endpoint (pid $(cat "$pidfile"))"
  else
    log "starting MinIO at $endpoint (data in .local/minio-data)"
    set -a; source "$state/minio-credentials"; set +a
    MINIO_BROWSER=off MINIO_UPDATE=off setsid nohup minio server "$state/minio-data" --address "127.0.0.1:$port" \
      --console-address "127.0.0.1:$((port + 1))" > "$state/minio.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
  fi
  for _ in $(seq 1 150); do
    curl -fsS "$endpoint/minio/health/ready" >/dev/null 2>&1 && return 0
    running || { log "MinIO exited; see .local/minio.log:"; tail -n 20 "$state/minio.log" >&2; exit 1; }
    sleep 0.2
  done
  log "MinIO did not become ready in 30 s (port $port taken? set NIX_CACHE_DEMO_PORT)"; exit 1
}

case "${1:-up}" in
  up)
    start_minio
    pulumi_env
    set -a; source "$state/minio-credentials"; set +a
    cd "$root"
    pulumi stack select local >/dev/null 2>&1 || pulumi stack init local >/dev/null
    pulumi config set nix-cache:endpoint "$endpoint" --stack local
    pulumi config set nix-cache:adminUser "$MINIO_ROOT_USER" --stack local
    # Set only when it differs, so a second run leaves Pulumi.local.yaml as it is.
    if [[ "$(pulumi config get nix-cache:adminPassword --stack local 2>/dev/null || true)" != "$MINIO_ROOT_PASSWORD" ]]; then
      printf '%s' "$MINIO_ROOT_PASSWORD" | pulumi config set --secret nix-cache:adminPassword --stack local
    fi
    unset MINIO_ROOT_PASSWORD
    pulumi up --yes --stack local --skip-preview
    echo
    pulumi stack output --stack local
    echo
    echo "Secrets are hidden above. To see them: npm run demo:pulumi -- stack output --show-secrets"
    echo "Check for drift: npm run demo:pulumi -- preview --refresh --expect-no-changes"
    echo "Stop the server: npm run demo:down"
    ;;
  down)
    if running; then
      kill "$(cat "$pidfile")"
      log "stopped MinIO (data kept in .local/minio-data)"
    else
      log "MinIO is not running"
    fi
    rm -f "$pidfile"
    ;;
  pulumi)
    shift
    pulumi_env
    cd "$root"
    exec pulumi --stack local "$@"
    ;;
  *)
    log "unknown command '$1' (allowed: up, down, pulumi)"; exit 2 ;;
esac
