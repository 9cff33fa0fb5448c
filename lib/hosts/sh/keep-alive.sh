# shellcheck shell=bash
# The drain's keep-alive functions (issue 12; the GC's side is lib/gc/plan.ts), spliced into drain.sh by
# lib/hosts/builderModule.ts (keepAliveBody): `refresh_closure PATH...` refreshes the cached closure of pushed
# paths. Needs AWS_SHARED_CREDENTIALS_FILE (the push URL's profile) and NIX_SSL_CERT_FILE (https) in the
# environment. Uses curl's own SigV4 (curl is on every NixOS) with the keys on stdin, so no other user sees
# them in `ps`. lib/s3/pushTarget.ts reads the push URL and the credentials file the same way, and
# tests/unit/builderShell.test.ts holds both to the same cases.
# The drain sets these from the module's options; declared here for shellcheck, which reads this file alone
# (these lines above the marker are not in the module).
declare spool push_url refresh_after
# ---- the module text: lib/hosts/builderModule.ts reads the lines below this one ----
# Keep-alive (issue 12): the GC collects what was neither pushed nor refreshed within its retainDays, and Nix
# skips paths already cached, so a dependency in daily use would age out under its dependents. After each push
# the drain refreshes the pushed closure's paths whose narinfo is at least refresh_after seconds old, with a
# CopyObject of each object onto itself (MinIO rewrites metadata only: same ETag, new LastModified): the NAR
# before its narinfo and dependencies before dependents, so refreshed ages never invert. A failure here never
# fails the drain or queues anything again: the push succeeded, and the next push refreshes again.

# The SHA-256 of an empty body: curl 7.88 sends no x-amz-content-sha256 (MinIO accepts that, AWS S3 does not),
# newer curl signs the value given.
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

url_decode() { local v=${1//\\/\\\\}; printf "%b" "${v//%/\\x}"; }

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf "%s" "${s%"${s##*[![:space:]]}"}"; }

# Sets s3_bucket, s3_endpoint, s3_region and s3_profile from push_url, resolved as Nix's S3 store resolves it
# (lib/s3/pushTarget.ts parseS3StoreUrl): s3://BUCKET?endpoint=…&region=…&profile=…&scheme=….
s3_target() {
  local rest=${push_url#s3://} query="" part name value endpoint="" scheme=https parts
  [ "$rest" != "$push_url" ] || return 1
  s3_bucket=${rest%%\?*}
  if [[ $rest == *\?* ]]; then query=${rest#*\?}; fi
  s3_region=us-east-1
  s3_profile=default
  IFS="&" read -r -a parts <<< "$query"
  for part in "${parts[@]}"; do
    # Nix ignores a parameter without a value (an empty one too): `?profile` names no profile.
    [[ $part == *=* ]] || continue
    name=${part%%=*}
    value=$(url_decode "${part#*=}")
    case $name in
      endpoint) endpoint=$value ;;
      region) s3_region=$value ;;
      profile) s3_profile=$value ;;
      scheme) scheme=$value ;;
    esac
  done
  if [ -z "$endpoint" ]; then endpoint="https://s3.$s3_region.amazonaws.com"; fi
  if [[ $endpoint != *://* ]]; then endpoint="$scheme://$endpoint"; fi
  # scheme://host[:port]: requests are path-style, /BUCKET/KEY.
  s3_endpoint="${endpoint%%://*}://$(value=${endpoint#*://}; printf "%s" "${value%%/*}")"
  [ -n "$s3_bucket" ] && [[ $s3_bucket != */* ]]
}

# Sets s3_user ("ACCESS:SECRET") from the profile's section of the AWS shared credentials file.
s3_credentials() {
  local file=${AWS_SHARED_CREDENTIALS_FILE:-${HOME:-/root}/.aws/credentials} line section="" access="" secret=""
  local kv="^([A-Za-z_]+)[[:space:]]*=[[:space:]]*(.*)$"
  [ -r "$file" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    line=$(trim "$line")
    if [[ $line == "["*"]" ]]; then
      section=$(trim "${line:1:${#line}-2}")
    elif [ "$section" = "$s3_profile" ] && [[ $line =~ $kv ]]; then
      case ${BASH_REMATCH[1]} in
        aws_access_key_id) access=${BASH_REMATCH[2]} ;;
        aws_secret_access_key) secret=${BASH_REMATCH[2]} ;;
      esac
    fi
  done < "$file"
  [ -n "$access" ] && [ -n "$secret" ] || return 1
  s3_user="$access:$secret"
}

# s3 METHOD KEY [curl arguments]: one request signed with SigV4, the keys passed on stdin (never on a command
# line, which other users can read). Sets s3_status ("000" when there was no answer), s3_error (curl's message,
# or the S3 error code) and s3_age (seconds between the object's Last-Modified and the server's Date: the
# server's clock only); the body is left in $s3_tmp/body.
s3() {
  local method=$1 key=$2 how lm now quoted
  shift 2
  if [ "$method" = HEAD ]; then how=(--head); else how=(--request "$method"); fi
  quoted=${s3_user//\\/\\\\}
  quoted=${quoted//\"/\\\"}
  rm -f "$s3_tmp/headers" "$s3_tmp/body"
  s3_status=$(printf "user = \"%s\"\n" "$quoted" | curl --config - --silent --show-error \
    --aws-sigv4 "aws:amz:$s3_region:s3" "${s3_cacert[@]}" --connect-timeout 10 --max-time 120 \
    --header "x-amz-content-sha256: $empty_sha256" "${how[@]}" "$@" \
    --dump-header "$s3_tmp/headers" --output "$s3_tmp/body" --write-out "%{http_code}" \
    "$s3_endpoint/$s3_bucket/$key" 2> "$s3_tmp/error")
  if [ -z "$s3_status" ]; then s3_status=000; fi
  s3_error=$(head -c 200 "$s3_tmp/error" | tr "\n" " ")
  if [ -f "$s3_tmp/body" ] && grep -q "<Error>" "$s3_tmp/body"; then
    # CopyObject can answer 200 with an error in the body.
    s3_error=$(sed -n "s:.*<Code>\([^<]*\)</Code>.*:\1:p" "$s3_tmp/body" | head -n 1)
    if [ "$s3_status" = 200 ]; then s3_status=500; fi
  fi
  s3_age=""
  lm=$(sed -n "s/^last-modified:[[:space:]]*//Ip" "$s3_tmp/headers" 2> /dev/null | tr -d "\r" | tail -n 1)
  now=$(sed -n "s/^date:[[:space:]]*//Ip" "$s3_tmp/headers" 2> /dev/null | tr -d "\r" | tail -n 1)
  if [ -n "$lm" ] && lm=$(date -u -d "$lm" +%s 2> /dev/null); then
    if [ -z "$now" ] || ! now=$(date -u -d "$now" +%s 2> /dev/null); then now=$(date -u +%s); fi
    s3_age=$((now - lm))
  fi
}

# CopyObject of KEY onto itself with the Content-Type Nix gives it (REPLACE replaces all metadata).
s3_touch() {
  s3 PUT "$1" --header "x-amz-copy-source: /$s3_bucket/$1" --header "x-amz-metadata-directive: REPLACE" \
    --header "Content-Type: $2"
}

# `nix-store --dump-db` registrations (path, hash, size, deriver, count, references) as "reference referrer"
# lines for tsort, plus "path path" so that every path appears.
dump_db_edges() {
  local p count ref i
  while read -r p; do
    read -r _; read -r _; read -r _ # hash, size, deriver
    read -r count
    [[ $count =~ ^[0-9]+$ ]] || return 1
    printf "%s %s\n" "$p" "$p"
    for ((i = 0; i < count; i++)); do
      read -r ref
      printf "%s %s\n" "$ref" "$p"
    done
  done
}

# The closure of the given paths, dependencies before dependents. The manual promises no order for
# `nix-store --query --requisites` (2.8 happens to print one), so the order comes from tsort.
closure_in_order() {
  local closure
  closure=$(nix-store --query --requisites "$@") || return 1
  mapfile -t closure <<< "$closure"
  nix-store --dump-db "${closure[@]}" > "$s3_tmp/db" || return 1
  dump_db_edges < "$s3_tmp/db" > "$s3_tmp/edges" || return 1
  tsort "$s3_tmp/edges"
}

# Refreshes the cached closure of the given (just pushed) paths; reports, never fails.
refresh_closure() (
  refreshed=0
  cached=0
  stop() {
    echo "nix-cache: refreshing cached paths stopped: $1; the push itself succeeded" >&2
    summary
    exit 0
  }
  summary() {
    if [ "$refreshed" -gt 0 ]; then echo "nix-cache: refreshed $refreshed of $cached cached paths"; fi
  }
  answer() { if [ "$s3_status" = 000 ]; then echo "no answer (${s3_error:-curl failed})"; else echo "HTTP $s3_status${s3_error:+ ($s3_error)}"; fi; }
  s3_tmp=$(mktemp -d "$spool/tmp/refresh.XXXXXXXX") || stop "no temporary directory in $spool/tmp"
  trap 'rm -rf "$s3_tmp"' EXIT
  s3_target || stop "cannot read the bucket and endpoint from $push_url"
  s3_credentials || stop "no credentials for profile $s3_profile in ${AWS_SHARED_CREDENTIALS_FILE:-~/.aws/credentials}"
  s3_cacert=()
  if [ -n "${NIX_SSL_CERT_FILE:-}" ]; then s3_cacert=(--cacert "$NIX_SSL_CERT_FILE"); fi
  order=$(closure_in_order "$@") || stop "could not read the closure of the pushed paths from the store"
  mapfile -t order <<< "$order"
  for p in "${order[@]}"; do
    [ -n "$p" ] || continue
    base=${p##*/}
    narinfo="${base:0:32}.narinfo"
    s3 HEAD "$narinfo"
    case $s3_status in
      200) cached=$((cached + 1)) ;;
      404) echo "nix-cache: $narinfo ($p) is not in the cache; not refreshed" >&2; continue ;;
      *) stop "HEAD $narinfo: $(answer)" ;;
    esac
    if [ -n "$s3_age" ] && [ "$s3_age" -lt "$refresh_after" ]; then continue; fi
    s3 GET "$narinfo"
    case $s3_status in
      200) ;;
      404) echo "nix-cache: $narinfo vanished while refreshing; skipped" >&2; continue ;;
      *) stop "GET $narinfo: $(answer)" ;;
    esac
    nar=$(sed -n "s/^URL:[[:space:]]*//p" "$s3_tmp/body" | tr -d "\r" | head -n 1)
    if ! [[ $nar =~ ^[A-Za-z0-9][A-Za-z0-9._+/-]*$ ]] || [[ $nar == *..* ]]; then
      echo "nix-cache: $narinfo has no usable URL line; skipped" >&2
      continue
    fi
    s3_touch "$nar" application/x-nix-nar
    case $s3_status in
      200) ;;
      404) echo "nix-cache: $nar (the NAR of $narinfo) is missing; skipped" >&2; continue ;;
      *) stop "refreshing $nar: $(answer)" ;;
    esac
    s3_touch "$narinfo" text/x-nix-narinfo
    case $s3_status in
      200) refreshed=$((refreshed + 1)) ;;
      404) echo "nix-cache: $narinfo vanished while refreshing; skipped" >&2 ;;
      *) stop "refreshing $narinfo: $(answer)" ;;
    esac
  done
  summary
)
