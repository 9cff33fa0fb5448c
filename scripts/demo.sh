#!/usr/bin/env bash
# The embedded local default: a MinIO on 127.0.0.1 with its data and generated root credentials under .local/,
# a file:// Pulumi backend there, and stack `local` of this project deployed on it.
#   demo.sh up [--tls]        start MinIO (if not running), pulumi up, print the outputs
#   demo.sh down              stop the MinIO servers (http and https; their data stays under .local/)
#   demo.sh pulumi [--tls] …  run any pulumi command on the demo stack (e.g. stack output --show-secrets)
# --tls (or NIX_CACHE_DEMO_TLS=1) is the HTTPS demo, a world of its own beside the http one: a throwaway CA and
# MinIO's certificate in .local/tls (made once by scripts/demoTls.ts), MinIO on https://localhost:9443 with its
# data in .local/tls/minio-data, stack `local-tls` with nix-cache:caCertificate set to that CA. It shares the
# backend, passphrase and MinIO credentials with the http demo, and never touches the http demo's resources.
# NIX_CACHE_DEMO_DIR moves .local/ elsewhere (the tests use it to leave a developer's own demo alone).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${NIX_CACHE_DEMO_DIR:-$root/.local}
tlsdir="$state/tls"
log() { printf 'demo: %s\n' "$*" >&2; }

case "${NIX_CACHE_DEMO_TLS:-}" in
  1 | true | yes) tls=1 ;;
  "" | 0 | false | no) tls=0 ;;
  *) log "NIX_CACHE_DEMO_TLS='$NIX_CACHE_DEMO_TLS' (allowed: 1 or 0)"; exit 2 ;;
esac
command=${1:-up}
[[ $# -gt 0 ]] && shift
# `up --tls`, `pulumi --tls …`; `down` stops both servers anyway, so it takes --tls too.
if [[ "${1:-}" == "--tls" ]]; then tls=1; shift; fi

# Where this mode's server, data and stack are.
set_mode() {
  if (($1)); then
    stack=local-tls
    port=${NIX_CACHE_DEMO_PORT:-9443}
    endpoint="https://localhost:$port"
    datadir="$tlsdir/minio-data"
    pidfile="$tlsdir/minio.pid"
    logfile="$tlsdir/minio.log"
  else
    stack=local
    port=${NIX_CACHE_DEMO_PORT:-9000}
    endpoint="http://127.0.0.1:$port"
    datadir="$state/minio-data"
    pidfile="$state/minio.pid"
    logfile="$state/minio.log"
  fi
}
set_mode "$tls"
shown() { printf '%s' "${1#"$root/"}"; }

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# Is something listening on 127.0.0.1:$1?
port_open() { (: < "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# What listens on port $1, as "NAME (pid N)", from ss (iproute2) when it can tell; empty when it cannot. The
# name is the program's (argv[0]), not ss's thread name (node calls its main thread "MainThread").
port_holder() {
  command -v ss >/dev/null 2>&1 || return 0
  local found name pid
  found=$(ss -Hltnp "( sport = :$1 )" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 \2/p' | head -n 1)
  [[ -n "$found" ]] || return 0
  name=${found% *} pid=${found##* }
  local argv0
  argv0=$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | head -n 1 || true)
  [[ -z "$argv0" ]] || name=$(basename "$argv0")
  printf '%s (pid %s)' "$name" "$pid"
}

# Refuses, before anything is made or changed, a demo port (or MinIO's console port next to it) that is held
# by anything but this checkout's own demo MinIO: otherwise the demo would talk to a stranger, which answers
# with "rejected the admin credentials" at best.
check_port() {
  local again="NIX_CACHE_DEMO_PORT=$((port + 100)) npm run demo"
  ((tls)) && again+=" -- --tls"
  if running; then
    local pid args
    pid=$(cat "$pidfile")
    args=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
    [[ " $args " == *" 127.0.0.1:$port "* ]] && return 0
    log "this checkout's demo MinIO (pid $pid) is running, but not on port $port (it runs: ${args% }); nothing was changed."
    log "Use the port it runs on (unset NIX_CACHE_DEMO_PORT or set it to that port), or stop it first: npm run demo:down"
    exit 2
  fi
  local p what holder
  for p in "$port" "$((port + 1))"; do
    port_open "$p" || continue
    what="port $p"
    ((p == port)) || what="port $p (MinIO's console port, the demo port + 1)"
    holder=$(port_holder "$p")
    log "$what on 127.0.0.1 is taken by ${holder:-a process this script cannot name (ss shows it: ss -ltnp 'sport = :$p')}, which is not this checkout's demo MinIO; nothing was started or changed."
    [[ "$holder" == minio* ]] && log "If it is another checkout's demo, \`npm run demo:down\` there stops it."
    log "Stop it, or give the demo another port: $again"
    exit 2
  done
}

pulumi_env() {
  mkdir -p "$state/backend" "$state/pulumi-home"
  [[ -f "$state/passphrase" ]] || (umask 077 && head -c 24 /dev/urandom | base64 > "$state/passphrase")
  export PULUMI_BACKEND_URL="file://$state/backend"
  export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
  export PULUMI_HOME="$state/pulumi-home"
  export PULUMI_SKIP_UPDATE_CHECK=1
  export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1
}

# The CA and MinIO's certificate: made on the first run, reused (and renewed when due) after that.
make_certs() {
  (cd "$root" && node -r ts-node/register/transpile-only scripts/demoTls.ts "$(shown "$tlsdir")") ||
    { log "could not set up the certificates in $(shown "$tlsdir") (see above)"; exit 1; }
}

start_minio() {
  mkdir -p "$datadir"
  if [[ ! -f "$state/minio-credentials" ]]; then
    (umask 077 && printf 'MINIO_ROOT_USER=nixcacheadmin\nMINIO_ROOT_PASSWORD=%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" \
      > "$state/minio-credentials")
  fi
  local certs_args=() curl_args=()
  if ((tls)); then
    certs_args=(--certs-dir "$tlsdir/minio-certs")
    curl_args=(--cacert "$tlsdir/ca.pem")
  fi
  if running; then
    log "MinIO already running at $endpoint (pid $(cat "$pidfile"))"
  else
    log "starting MinIO at $endpoint (data in $(shown "$datadir"))"
    set -a; source "$state/minio-credentials"; set +a
    MINIO_BROWSER=off MINIO_UPDATE=off setsid nohup minio server "$datadir" --address "127.0.0.1:$port" \
      --console-address "127.0.0.1:$((port + 1))" "${certs_args[@]}" > "$logfile" 2>&1 < /dev/null &
    echo $! > "$pidfile"
  fi
  for _ in $(seq 1 150); do
    curl -fsS "${curl_args[@]}" "$endpoint/minio/health/ready" >/dev/null 2>&1 && return 0
    running || { log "MinIO exited; see $(shown "$logfile"):"; tail -n 20 "$logfile" >&2; exit 1; }
    sleep 0.2
  done
  log "MinIO did not become ready at $endpoint in 30 s (port $port taken? set NIX_CACHE_DEMO_PORT); last check:"
  curl -fsS "${curl_args[@]}" "$endpoint/minio/health/ready" 2>&1 >/dev/null | sed 's/^/  /' >&2 || true
  exit 1
}

# Stops the server of one mode, waiting (up to 10 s) until it is gone.
stop_minio() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    log "stopped the $1 MinIO server (data kept in $(shown "$datadir"))"
    stopped=1
  fi
  rm -f "$pidfile"
}

case "$command" in
  up)
    [[ $# -eq 0 ]] || { log "unknown argument '$1' to up (allowed: --tls)"; exit 2; }
    check_port
    ((tls)) && make_certs
    start_minio
    pulumi_env
    set -a; source "$state/minio-credentials"; set +a
    cd "$root"
    pulumi stack select "$stack" >/dev/null 2>&1 || pulumi stack init "$stack" >/dev/null
    pulumi config set nix-cache:endpoint "$endpoint" --stack "$stack"
    pulumi config set nix-cache:adminUser "$MINIO_ROOT_USER" --stack "$stack"
    # Set only when it differs, so a second run leaves Pulumi.$stack.yaml as it is.
    if [[ "$(pulumi config get nix-cache:adminPassword --stack "$stack" 2>/dev/null || true)" != "$MINIO_ROOT_PASSWORD" ]]; then
      printf '%s' "$MINIO_ROOT_PASSWORD" | pulumi config set --secret nix-cache:adminPassword --stack "$stack"
    fi
    unset MINIO_ROOT_PASSWORD
    if ((tls)); then
      ca=$(cat "$tlsdir/ca.pem")
      if [[ "$(pulumi config get nix-cache:caCertificate --stack "$stack" 2>/dev/null || true)" != "$ca" ]]; then
        pulumi config set nix-cache:caCertificate --stack "$stack" -- "$ca"
      fi
    fi
    pulumi up --yes --stack "$stack" --skip-preview
    echo
    pulumi stack output --stack "$stack"
    echo
    flag=""
    ((tls)) && flag="--tls "
    echo "Secrets are hidden above. To see them: npm run demo:pulumi -- ${flag}stack output --show-secrets"
    echo "Check for drift: npm run demo:pulumi -- ${flag}preview --refresh --expect-no-changes"
    if ((tls)); then
      substituter=$(pulumi stack output substituterUrl --stack "$stack" 2>/dev/null || true)
      echo "The CA MinIO's certificate comes from: $(shown "$tlsdir")/ca.pem (key in $(shown "$tlsdir")/ca.key)"
      if [[ -n "$substituter" ]]; then
        echo "Fetch over HTTPS: curl --cacert $(shown "$tlsdir")/ca.pem $substituter/nix-cache-info"
      fi
    fi
    echo "Stop the server: npm run demo:down"
    ;;
  down)
    [[ $# -eq 0 ]] || { log "unknown argument '$1' to down (it stops both the http and the https server)"; exit 2; }
    stopped=0
    set_mode 0; stop_minio "http"
    set_mode 1; stop_minio "https (--tls)"
    ((stopped)) || log "MinIO is not running"
    ;;
  pulumi)
    pulumi_env
    cd "$root"
    exec pulumi --stack "$stack" "$@"
    ;;
  *)
    log "unknown command '$command' (allowed: up, down, pulumi)"; exit 2 ;;
esac
