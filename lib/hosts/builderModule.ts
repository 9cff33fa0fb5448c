// The builder host's NixOS module: sign what Nix builds, queue it from a post-build hook that can never
// slow or break a build, and push the queue to the cache from a systemd service that retries; after each push
// the service refreshes the pushed closure's older cached paths in place, so the GC keeps what is still used.
// Secrets are referenced by path only: everything in a .nix file ends up world-readable in /nix/store.
import { keyFileSuffix, keyList, keyNameOf, nixIndentedBody, nixString, pkiCertificatesLines } from "./hostConfig";
import { gcAssertionLines, gcConfigLines, gcOptionLines, gcScriptLetLines, GcTimerInput } from "./gcTimerModule";

export { nixIndentedBody };

/** File names of the secrets `host-config --secrets-dir` writes; the module's defaults use the same names.
 *  SIGNING_KEY_FILE_NAME holds the active key (the secretKey output); previous keys: previousSigningKeyFileName. */
export const SIGNING_KEY_FILE_NAME = "nix-cache-signing-key";
export const AWS_CREDENTIALS_FILE_NAME = "nix-cache-aws-credentials";

/** Where NixOS secret managers (agenix, sops-nix) decrypt secrets to; the module's defaults point there. */
export const SECRETS_MOUNT = "/run/secrets";

/**
 * The file name of a previous key's secret (a key of nix-cache:previousKeyNames, still signing during a
 * rotation): `nix-cache-signing-key-NAME`, named by the key's name (see keyFileSuffix for names with odd
 * characters), so a file never changes meaning: the key of a name is the same until it is retired.
 */
export function previousSigningKeyFileName(keyName: string): string {
  return `${SIGNING_KEY_FILE_NAME}-${keyFileSuffix(keyName)}`;
}

/** The default of previousSigningKeyFiles for the previous keys (`NAME:…` or bare names), in their order. */
export function defaultPreviousSigningKeyFiles(previousKeys: readonly string[]): string[] {
  return previousKeys.map((key) => `${SECRETS_MOUNT}/${previousSigningKeyFileName(keyNameOf(key))}`);
}

/** Where the module's options point by default: NixOS secret managers (agenix, sops-nix) decrypt to /run/secrets... */
export const BUILDER_DEFAULTS = {
  signingKeyFile: `${SECRETS_MOUNT}/${SIGNING_KEY_FILE_NAME}`,
  awsCredentialsFile: `${SECRETS_MOUNT}/${AWS_CREDENTIALS_FILE_NAME}`,
  spoolDir: "/var/spool/nix-cache",
  pushAttempts: 4,
  retryDelaySec: 5,
  retryInterval: "5min",
  /** The drain refreshes a cached path of a pushed closure once its narinfo is this old (0: on every push). */
  refreshAfterSec: 86400,
  /** NixOS's system CA bundle: it holds what security.pki.certificates adds. */
  sslCertFile: "/etc/ssl/certs/ca-certificates.crt",
} as const;

/** The NixOS option set the module declares (services.nix-cache-builder). */
export const BUILDER_OPTION_PATH = "services.nix-cache-builder";

/** Set to a shell command to replace `nix copy --to <pushUrl>` in the drain (tests; other uploaders).
 *  It gets the store paths as arguments and NIX_CACHE_PUSH_URL in its environment. */
export const PUSH_COMMAND_ENV = "NIX_CACHE_PUSH_CMD";

/** The setting every push runs with (the facts' section 2): Nix's default 30-day narinfo-cache-positive-ttl would
 *  let it trust its own record of an upload and skip re-uploading a path the GC collected since. */
export const PUSH_NIX_OPTION = { name: "narinfo-cache-positive-ttl", value: "0" } as const;
/** The same as a nix.conf line, appended to NIX_CONFIG for PUSH_COMMAND_ENV (Nix reads NIX_CONFIG since 2.4). */
export const PUSH_NIX_CONFIG = `${PUSH_NIX_OPTION.name} = ${PUSH_NIX_OPTION.value}`;

/**
 * The post-build hook body. Expects `spool` to be set. Nix runs the hook synchronously after every build and
 * stops building when it fails, so it only writes one queue entry (no network, no store access) and always
 * exits 0. An entry lists `out PATH` lines from OUT_PATHS and a `drv PATH` line from DRV_PATH: Nix 2.8.0 runs
 * the hook with an empty OUT_PATHS (NixOS/nix#6446), and the drain then asks the store for the outputs.
 */
export function queueHookBody(): string {
  return [
    "# Called by Nix after each build with OUT_PATHS (space-separated) and DRV_PATH set.",
    "set -f # store paths are words, never globs",
    "queue_entry() {",
    "  umask 077",
    '  mkdir -p "$spool/queue" "$spool/tmp" || return 1',
    '  local tmp; tmp=$(mktemp "$spool/tmp/entry.XXXXXXXX") || return 1',
    "  {",
    "    for p in ${OUT_PATHS:-}; do printf 'out %s\\n' \"$p\"; done",
    '    if [ -n "${DRV_PATH:-}" ]; then printf \'drv %s\\n\' "$DRV_PATH"; fi',
    '  } > "$tmp" || { rm -f "$tmp"; return 1; }',
    "  # The rename makes the entry appear whole; the name sorts entries by time.",
    '  mv "$tmp" "$spool/queue/$(date +%s%N)-${tmp##*.}"',
    "}",
    'queue_entry 2>/dev/null || echo "nix-cache: could not queue ${OUT_PATHS:-$DRV_PATH} in $spool; the build is fine, the push is skipped" >&2',
    "exit 0",
    "",
  ].join("\n");
}

/**
 * The drain's keep-alive functions (issue 12; the GC's side is lib/gc/plan.ts): `refresh_closure PATH...` refreshes
 * the cached closure of pushed paths. Expects `spool`, `push_url` and `refresh_after` (seconds) to be set, and
 * AWS_SHARED_CREDENTIALS_FILE (the push URL's profile) and NIX_SSL_CERT_FILE (https) in the environment.
 * Uses curl's own SigV4 (curl is on every NixOS) with the keys on stdin, so no other user sees them in `ps`.
 */
export function keepAliveBody(): string {
  return [
    '# Keep-alive (issue 12): the GC collects what was neither pushed nor refreshed within its retainDays, and Nix',
    '# skips paths already cached, so a dependency in daily use would age out under its dependents. After each push',
    "# the drain refreshes the pushed closure's paths whose narinfo is at least refresh_after seconds old, with a",
    '# CopyObject of each object onto itself (MinIO rewrites metadata only: same ETag, new LastModified): the NAR',
    '# before its narinfo and dependencies before dependents, so refreshed ages never invert. A failure here never',
    '# fails the drain or queues anything again: the push succeeded, and the next push refreshes again.',
    '',
    '# The SHA-256 of an empty body: curl 7.88 sends no x-amz-content-sha256 (MinIO accepts that, AWS S3 does not),',
    '# newer curl signs the value given.',
    'empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    '',
    'url_decode() { local v=${1//\\\\/\\\\\\\\}; printf "%b" "${v//%/\\\\x}"; }',
    '',
    'trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf "%s" "${s%"${s##*[![:space:]]}"}"; }',
    '',
    "# Sets s3_bucket, s3_endpoint, s3_region and s3_profile from push_url, resolved as Nix's S3 store resolves it",
    '# (lib/s3/pushTarget.ts parseS3StoreUrl): s3://BUCKET?endpoint=…&region=…&profile=…&scheme=….',
    's3_target() {',
    '  local rest=${push_url#s3://} query="" part name value endpoint="" scheme=https parts',
    '  [ "$rest" != "$push_url" ] || return 1',
    '  s3_bucket=${rest%%\\?*}',
    '  if [[ $rest == *\\?* ]]; then query=${rest#*\\?}; fi',
    '  s3_region=us-east-1',
    '  s3_profile=default',
    '  IFS="&" read -r -a parts <<< "$query"',
    '  for part in "${parts[@]}"; do',
    '    name=${part%%=*}',
    '    value=$(url_decode "${part#*=}")',
    '    case $name in',
    '      endpoint) endpoint=$value ;;',
    '      region) s3_region=$value ;;',
    '      profile) s3_profile=$value ;;',
    '      scheme) scheme=$value ;;',
    '    esac',
    '  done',
    '  if [ -z "$endpoint" ]; then endpoint="https://s3.$s3_region.amazonaws.com"; fi',
    '  if [[ $endpoint != *://* ]]; then endpoint="$scheme://$endpoint"; fi',
    '  # scheme://host[:port]: requests are path-style, /BUCKET/KEY.',
    '  s3_endpoint="${endpoint%%://*}://$(value=${endpoint#*://}; printf "%s" "${value%%/*}")"',
    '  [ -n "$s3_bucket" ] && [[ $s3_bucket != */* ]]',
    '}',
    '',
    "# Sets s3_user (\"ACCESS:SECRET\") from the profile's section of the AWS shared credentials file.",
    's3_credentials() {',
    '  local file=${AWS_SHARED_CREDENTIALS_FILE:-${HOME:-/root}/.aws/credentials} line section="" access="" secret=""',
    '  local kv="^([A-Za-z_]+)[[:space:]]*=[[:space:]]*(.*)$"',
    '  [ -r "$file" ] || return 1',
    '  while IFS= read -r line || [ -n "$line" ]; do',
    '    line=$(trim "$line")',
    '    if [[ $line == "["*"]" ]]; then',
    '      section=$(trim "${line:1:${#line}-2}")',
    '    elif [ "$section" = "$s3_profile" ] && [[ $line =~ $kv ]]; then',
    '      case ${BASH_REMATCH[1]} in',
    '        aws_access_key_id) access=${BASH_REMATCH[2]} ;;',
    '        aws_secret_access_key) secret=${BASH_REMATCH[2]} ;;',
    '      esac',
    '    fi',
    '  done < "$file"',
    '  [ -n "$access" ] && [ -n "$secret" ] || return 1',
    '  s3_user="$access:$secret"',
    '}',
    '',
    '# s3 METHOD KEY [curl arguments]: one request signed with SigV4, the keys passed on stdin (never on a command',
    "# line, which other users can read). Sets s3_status (\"000\" when there was no answer), s3_error (curl's message,",
    "# or the S3 error code) and s3_age (seconds between the object's Last-Modified and the server's Date: the",
    "# server's clock only); the body is left in $s3_tmp/body.",
    's3() {',
    '  local method=$1 key=$2 how lm now quoted',
    '  shift 2',
    '  if [ "$method" = HEAD ]; then how=(--head); else how=(--request "$method"); fi',
    '  quoted=${s3_user//\\\\/\\\\\\\\}',
    '  quoted=${quoted//\\"/\\\\\\"}',
    '  rm -f "$s3_tmp/headers" "$s3_tmp/body"',
    '  s3_status=$(printf "user = \\"%s\\"\\n" "$quoted" | curl --config - --silent --show-error \\',
    '    --aws-sigv4 "aws:amz:$s3_region:s3" "${s3_cacert[@]}" --connect-timeout 10 --max-time 120 \\',
    '    --header "x-amz-content-sha256: $empty_sha256" "${how[@]}" "$@" \\',
    '    --dump-header "$s3_tmp/headers" --output "$s3_tmp/body" --write-out "%{http_code}" \\',
    '    "$s3_endpoint/$s3_bucket/$key" 2> "$s3_tmp/error")',
    '  if [ -z "$s3_status" ]; then s3_status=000; fi',
    '  s3_error=$(head -c 200 "$s3_tmp/error" | tr "\\n" " ")',
    '  if [ -f "$s3_tmp/body" ] && grep -q "<Error>" "$s3_tmp/body"; then',
    '    # CopyObject can answer 200 with an error in the body.',
    '    s3_error=$(sed -n "s:.*<Code>\\([^<]*\\)</Code>.*:\\1:p" "$s3_tmp/body" | head -n 1)',
    '    if [ "$s3_status" = 200 ]; then s3_status=500; fi',
    '  fi',
    '  s3_age=""',
    '  lm=$(sed -n "s/^last-modified:[[:space:]]*//Ip" "$s3_tmp/headers" 2> /dev/null | tr -d "\\r" | tail -n 1)',
    '  now=$(sed -n "s/^date:[[:space:]]*//Ip" "$s3_tmp/headers" 2> /dev/null | tr -d "\\r" | tail -n 1)',
    '  if [ -n "$lm" ] && lm=$(date -u -d "$lm" +%s 2> /dev/null); then',
    '    if [ -z "$now" ] || ! now=$(date -u -d "$now" +%s 2> /dev/null); then now=$(date -u +%s); fi',
    '    s3_age=$((now - lm))',
    '  fi',
    '}',
    '',
    '# CopyObject of KEY onto itself with the Content-Type Nix gives it (REPLACE replaces all metadata).',
    's3_touch() {',
    '  s3 PUT "$1" --header "x-amz-copy-source: /$s3_bucket/$1" --header "x-amz-metadata-directive: REPLACE" \\',
    '    --header "Content-Type: $2"',
    '}',
    '',
    '# `nix-store --dump-db` registrations (path, hash, size, deriver, count, references) as "reference referrer"',
    '# lines for tsort, plus "path path" so that every path appears.',
    'dump_db_edges() {',
    '  local p hash size deriver count ref i',
    '  while read -r p; do',
    '    read -r hash; read -r size; read -r deriver; read -r count',
    '    [[ $count =~ ^[0-9]+$ ]] || return 1',
    '    printf "%s %s\\n" "$p" "$p"',
    '    for ((i = 0; i < count; i++)); do',
    '      read -r ref',
    '      printf "%s %s\\n" "$ref" "$p"',
    '    done',
    '  done',
    '}',
    '',
    '# The closure of the given paths, dependencies before dependents. The manual promises no order for',
    '# `nix-store --query --requisites` (2.8 happens to print one), so the order comes from tsort.',
    'closure_in_order() {',
    '  local closure',
    '  closure=$(nix-store --query --requisites "$@") || return 1',
    '  mapfile -t closure <<< "$closure"',
    '  nix-store --dump-db "${closure[@]}" > "$s3_tmp/db" || return 1',
    '  dump_db_edges < "$s3_tmp/db" > "$s3_tmp/edges" || return 1',
    '  tsort "$s3_tmp/edges"',
    '}',
    '',
    '# Refreshes the cached closure of the given (just pushed) paths; reports, never fails.',
    'refresh_closure() (',
    '  refreshed=0',
    '  cached=0',
    '  stop() {',
    '    echo "nix-cache: refreshing cached paths stopped: $1; the push itself succeeded" >&2',
    '    summary',
    '    exit 0',
    '  }',
    '  summary() {',
    '    if [ "$refreshed" -gt 0 ]; then echo "nix-cache: refreshed $refreshed of $cached cached paths"; fi',
    '  }',
    '  answer() { if [ "$s3_status" = 000 ]; then echo "no answer (${s3_error:-curl failed})"; else echo "HTTP $s3_status${s3_error:+ ($s3_error)}"; fi; }',
    '  s3_tmp=$(mktemp -d "$spool/tmp/refresh.XXXXXXXX") || stop "no temporary directory in $spool/tmp"',
    "  trap 'rm -rf \"$s3_tmp\"' EXIT",
    '  s3_target || stop "cannot read the bucket and endpoint from $push_url"',
    '  s3_credentials || stop "no credentials for profile $s3_profile in ${AWS_SHARED_CREDENTIALS_FILE:-~/.aws/credentials}"',
    '  s3_cacert=()',
    '  if [ -n "${NIX_SSL_CERT_FILE:-}" ]; then s3_cacert=(--cacert "$NIX_SSL_CERT_FILE"); fi',
    '  order=$(closure_in_order "$@") || stop "could not read the closure of the pushed paths from the store"',
    '  mapfile -t order <<< "$order"',
    '  for p in "${order[@]}"; do',
    '    [ -n "$p" ] || continue',
    '    base=${p##*/}',
    '    narinfo="${base:0:32}.narinfo"',
    '    s3 HEAD "$narinfo"',
    '    case $s3_status in',
    '      200) cached=$((cached + 1)) ;;',
    '      404) echo "nix-cache: $narinfo ($p) is not in the cache; not refreshed" >&2; continue ;;',
    '      *) stop "HEAD $narinfo: $(answer)" ;;',
    '    esac',
    '    if [ -n "$s3_age" ] && [ "$s3_age" -lt "$refresh_after" ]; then continue; fi',
    '    s3 GET "$narinfo"',
    '    case $s3_status in',
    '      200) ;;',
    '      404) echo "nix-cache: $narinfo vanished while refreshing; skipped" >&2; continue ;;',
    '      *) stop "GET $narinfo: $(answer)" ;;',
    '    esac',
    '    nar=$(sed -n "s/^URL:[[:space:]]*//p" "$s3_tmp/body" | tr -d "\\r" | head -n 1)',
    '    if ! [[ $nar =~ ^[A-Za-z0-9][A-Za-z0-9._+/-]*$ ]] || [[ $nar == *..* ]]; then',
    '      echo "nix-cache: $narinfo has no usable URL line; skipped" >&2',
    '      continue',
    '    fi',
    '    s3_touch "$nar" application/x-nix-nar',
    '    case $s3_status in',
    '      200) ;;',
    '      404) echo "nix-cache: $nar (the NAR of $narinfo) is missing; skipped" >&2; continue ;;',
    '      *) stop "refreshing $nar: $(answer)" ;;',
    '    esac',
    '    s3_touch "$narinfo" text/x-nix-narinfo',
    '    case $s3_status in',
    '      200) refreshed=$((refreshed + 1)) ;;',
    '      404) echo "nix-cache: $narinfo vanished while refreshing; skipped" >&2 ;;',
    '      *) stop "refreshing $narinfo: $(answer)" ;;',
    '    esac',
    '  done',
    '  summary',
    ')',
    "",
  ].join("\n");
}

/**
 * The drain body. Expects `spool`, `push_url`, `attempts`, `delay` (seconds, doubled after each failed
 * attempt) and `refresh_after` (see keepAliveBody) to be set. Pushes every queued path in one `nix copy`,
 * deletes the entries only after that succeeded, and keeps them (exit 1) when every attempt failed; the timer
 * runs it again later. After a push it refreshes the pushed closure's older cached paths (keepAliveBody).
 * Pushes run with narinfo-cache-positive-ttl = 0: otherwise Nix trusts its narinfo disk cache for 30 days and
 * never uploads again a path that the GC collected.
 */
export function drainBody(): string {
  return [
    "set -u",
    "shopt -s nullglob",
    'queue="$spool/queue"',
    'mkdir -p "$queue"',
    "# One drain at a time: the path unit and the timer may both start it.",
    'exec 9>"$spool/drain.lock"',
    'if ! flock -n 9; then echo "nix-cache: another drain is running"; exit 0; fi',
    "",
    'mkdir -p "$spool/tmp"',
    "",
    "# Nix would trust its narinfo disk cache for 30 days and skip paths a GC collected since: ask the cache.",
    "push() {",
    `  if [ -n "\${${PUSH_COMMAND_ENV}:-}" ]; then`,
    "    local nl=$'\\n'",
    `    NIX_CONFIG="\${NIX_CONFIG:+$NIX_CONFIG$nl}${PUSH_NIX_CONFIG}" NIX_CACHE_PUSH_URL="$push_url" \\`,
    `      sh -c "$${PUSH_COMMAND_ENV} \\"\\$@\\"" nix-cache-push "$@"`,
    "  else",
    "    # `nix copy` belongs to the nix-command feature, which hosts may not have enabled.",
    `    nix --extra-experimental-features nix-command copy --option ${PUSH_NIX_OPTION.name} ${PUSH_NIX_OPTION.value} --to "$push_url" "$@"`,
    "  fi",
    "}",
    "",
    keepAliveBody(),
    "",
    "# The store paths of queue entries: their `out` lines, or the outputs of their `drv` when there are none.",
    "entry_paths() {",
    "  local entry outs drv",
    '  for entry in "$@"; do',
    "    outs=$(sed -n 's/^out //p' \"$entry\")",
    '    if [ -n "$outs" ]; then',
    '      printf \'%s\\n\' "$outs"',
    "    else",
    "      drv=$(sed -n 's/^drv //p' \"$entry\")",
    '      if [ -n "$drv" ]; then nix-store --query --outputs $drv 2>/dev/null || true; fi',
    "    fi",
    "  done | sort -u",
    "}",
    "",
    "for round in 1 2 3 4 5; do # entries queued while pushing are pushed in the next round",
    '  entries=("$queue"/*)',
    '  if [ "${#entries[@]}" -eq 0 ]; then exit 0; fi',
    '  mapfile -t queued < <(entry_paths "${entries[@]}")',
    "  # Paths deleted since they were built (garbage collection) can never be pushed: drop them, with a note.",
    "  paths=()",
    '  if [ "${#queued[@]}" -gt 0 ]; then',
    '    if invalid=$(nix-store --check-validity --print-invalid "${queued[@]}" 2>/dev/null); then',
    '      mapfile -t gone <<< "$invalid"',
    "    else # a malformed entry fails the whole query: ask path by path",
    "      gone=()",
    '      for p in "${queued[@]}"; do nix-store --check-validity "$p" 2>/dev/null || gone+=("$p"); done',
    "    fi",
    '    for p in "${queued[@]}"; do',
    '      if printf \'%s\\n\' "${gone[@]}" | grep -qxF "$p"; then',
    '        echo "nix-cache: $p is no longer in the store; dropping it"',
    "      else",
    '        paths+=("$p")',
    "      fi",
    "    done",
    "  fi",
    '  if [ "${#paths[@]}" -gt 0 ]; then',
    "    wait_s=$delay",
    "    for ((attempt = 1; ; attempt++)); do",
    '      if push "${paths[@]}"; then break; fi',
    '      if [ "$attempt" -ge "$attempts" ]; then',
    '        echo "nix-cache: pushing ${#paths[@]} paths to $push_url failed $attempts times; they stay queued in $queue" >&2',
    "        exit 1",
    "      fi",
    '      echo "nix-cache: push attempt $attempt/$attempts failed; retrying in ${wait_s}s" >&2',
    '      sleep "$wait_s"',
    "      wait_s=$((wait_s * 2))",
    "    done",
    '    echo "nix-cache: pushed ${#paths[@]} paths to $push_url"',
    "  fi",
    '  rm -f -- "${entries[@]}"',
    '  if [ "${#paths[@]}" -gt 0 ]; then refresh_closure "${paths[@]}"; fi',
    "done",
    "",
  ].join("\n");
}

export interface BuilderModuleInput {
  /** The `s3://` URL the drain pushes to (the stack's pushUrl output). */
  pushUrl: string;
  /** The active key's public half (the stack's publicKey output), named in signingKeyFile's description. */
  publicKey: string;
  /**
   * Every key of the stack, public halves, the active first (the stack's trustedPublicKeys output); the keys
   * after the first are the previous keys: previousSigningKeyFiles gets one default path per key, named by
   * its key name. Leave it out (or give [publicKey]) for a stack with one key: previousSigningKeyFiles is then
   * empty by default. Its first key must be `publicKey`, and its names distinct.
   */
  trustedPublicKeys?: readonly string[];
  /** The CA of MinIO's certificate (the stack's caCertificate output); undefined or "" when none. */
  caCertificate?: string;
  /**
   * The daily closure-safe GC run by this host (lib/hosts/gcTimerModule.ts), from the stack's outputs
   * (lib/hosts/hostFiles.ts gcTimerInputOf); undefined for a stack without a GC identity: no GC options or units.
   */
  gc?: GcTimerInput;
}

/**
 * The NixOS module for the builder host (nix-cache-builder.nix). Takes no secret: it cannot leak one.
 * Its options (services.nix-cache-builder.*): enable; pushUrl; signingKeyFile, the active key's secret file;
 * previousSigningKeyFiles, the previous keys' secret files (Nix signs with all of these through
 * secret-key-files); awsCredentialsFile; spoolDir; pushAttempts; retryDelaySec; sslCertFile; retryInterval;
 * refreshAfterSec (the drain's keep-alive of cached paths for the GC, see keepAliveBody).
 *
 * Why the active key keeps its single-file option and the previous keys get a list option of their own,
 * rather than one list option replacing signingKeyFile: every builder configured before key sets (the default
 * path, or signingKeyFile set to an agenix/sops-nix path) keeps evaluating and signing exactly as before when
 * the module is regenerated, with no option renamed or deprecated; signingKeyFile always holds the key that
 * the secretKey and publicKey outputs name, as a NixOS user reading the option expects; and a rotation only
 * adds entries to previousSigningKeyFiles (retiring removes them), each a file named by its key's name.
 */
export function builderModule({ pushUrl, publicKey, trustedPublicKeys, caCertificate, gc }: BuilderModuleInput): string {
  const d = BUILDER_DEFAULTS;
  const keys = keyList(trustedPublicKeys ?? [publicKey]);
  if (keys[0] !== publicKey) {
    throw new Error(`the first of trustedPublicKeys must be the active publicKey ${publicKey}, not ${keys[0]}`);
  }
  const previous = keys.slice(1);
  const nixList = (items: readonly string[]) => (items.length === 0 ? "[ ]" : `[ ${items.map(nixString).join(" ")} ]`);
  const previousDescription =
    "Paths of the secret key files of the cache's previous keys (nix-cache:previousKeyNames; the secretKeys output " +
    "after its first entry), one per key, in that order. Nix signs every path it builds with each of them as well as " +
    "with signingKeyFile (nix.settings.secret-key-files), so hosts that still trust only an older key keep accepting " +
    "new builds while a key is rotated. " +
    (previous.length === 0
      ? "This stack has no previous key: empty. "
      : `This stack's previous keys: ${previous.map((k) => `${keyNameOf(k)} (public key ${k})`).join(", ")}. `) +
    "The defaults are the files `npm run host-config -- --secrets-dir` writes (nix-cache-signing-key-NAME) under " +
    `${SECRETS_MOUNT}. Paths as strings outside the Nix store, like signingKeyFile; each file must exist on the ` +
    "builder, or Nix fails the build when it signs.";
  const option = (type: string, dflt: string, description: string) =>
    [
      "lib.mkOption {",
      `      type = ${type};`,
      `      default = ${dflt};`,
      `      description = ${nixString(description)};`,
      "    };",
    ].join("\n");
  return [
    "# Generated by the nix-cache Pulumi project (`npm run host-config`): the builder host signs what it builds",
    "# and pushes it to the cache in the background. Secrets are read from files at run time; none is in here.",
    "{ config, lib, pkgs, ... }:",
    "let",
    `  cfg = config.${BUILDER_OPTION_PATH};`,
    "  # Nix runs post-build-hook synchronously and stops building when it fails: the hook only queues.",
    '  queueHook = pkgs.writeShellScript "nix-cache-queue" \'\'',
    "    export PATH=${pkgs.coreutils}/bin:$PATH",
    "    spool=${lib.escapeShellArg cfg.spoolDir}",
    nixIndentedBody(queueHookBody(), "    "),
    "  '';",
    '  drain = pkgs.writeShellScript "nix-cache-drain" \'\'',
    "    export PATH=${pkgs.coreutils}/bin:${pkgs.util-linux}/bin:${pkgs.gnused}/bin:${pkgs.gnugrep}/bin:${pkgs.curl}/bin:${config.nix.package}/bin:$PATH",
    "    export AWS_SHARED_CREDENTIALS_FILE=${lib.escapeShellArg cfg.awsCredentialsFile}",
    "    # Nix's S3 client takes its CA file from Nix's ssl-cert-file, which NIX_SSL_CERT_FILE sets.",
    "    export NIX_SSL_CERT_FILE=${lib.escapeShellArg cfg.sslCertFile}",
    "    spool=${lib.escapeShellArg cfg.spoolDir}",
    "    push_url=${lib.escapeShellArg cfg.pushUrl}",
    "    attempts=${toString cfg.pushAttempts}",
    "    delay=${toString cfg.retryDelaySec}",
    "    refresh_after=${toString cfg.refreshAfterSec}",
    nixIndentedBody(drainBody(), "    "),
    "  '';",
    ...(gc ? gcScriptLetLines(gc, "  ") : []),
    "  isSecretPath = p: lib.hasPrefix \"/\" p && !(lib.hasPrefix builtins.storeDir p);",
    "in",
    "{",
    `  options.${BUILDER_OPTION_PATH} = {`,
    `    enable = ${option("lib.types.bool", "true", "Whether this host signs its builds and pushes them to the nix-cache binary cache. On by default: importing this module makes the host the builder.")}`,
    `    pushUrl = ${option("lib.types.str", nixString(pushUrl), "The store URL the queue is pushed to with `nix copy --to` (the stack's pushUrl output; its profile names the section of the credentials file).")}`,
    `    signingKeyFile = ${option("lib.types.str", nixString(d.signingKeyFile), `Path of the file holding the cache's active secret signing key (the secretKey output, whose public half is ${publicKey}). Used as the first of nix.settings.secret-key-files, so Nix signs every path it builds. Give a path as a string, never a ./path literal: that would copy the secret into the world-readable Nix store.`)}`,
    `    previousSigningKeyFiles = ${option("lib.types.listOf lib.types.str", nixList(defaultPreviousSigningKeyFiles(previous)), previousDescription)}`,
    `    awsCredentialsFile = ${option("lib.types.str", nixString(d.awsCredentialsFile), "Path of the AWS shared credentials file with the builder's profile (the awsCredentials output); the drain reads it through AWS_SHARED_CREDENTIALS_FILE. A string path outside the Nix store, like signingKeyFile.")}`,
    `    spoolDir = ${option("lib.types.str", nixString(d.spoolDir), "Directory of the push queue: the post-build hook writes one entry per build to its queue/ subdirectory, and the drain deletes an entry only after its paths were pushed.")}`,
    `    pushAttempts = ${option("lib.types.ints.positive", String(d.pushAttempts), "How many times one drain run tries the push before it gives up and leaves the queue for the next run.")}`,
    `    retryDelaySec = ${option("lib.types.ints.positive", String(d.retryDelaySec), "Seconds to wait after the first failed push attempt; the wait doubles after each further failure.")}`,
    `    sslCertFile = ${option("lib.types.str", nixString(d.sslCertFile), "The CA bundle the drain's `nix copy` trusts for the cache's https endpoint, exported as NIX_SSL_CERT_FILE (Nix hands it to its S3 client as the CA file, so AWS_CA_BUNDLE is not read). The default, NixOS's system bundle, holds the cache's CA through security.pki.certificates; elsewhere point it at a bundle that holds the CA.")}`,
    `    retryInterval = ${option("lib.types.str", nixString(d.retryInterval), "How often (a systemd time span) the timer runs the drain, pushing whatever earlier runs could not.")}`,
    `    refreshAfterSec = ${option("lib.types.ints.unsigned", String(d.refreshAfterSec), "Keep-alive for the cache's garbage collector, which keeps what was pushed or refreshed within its retainDays: after each push, the drain refreshes every path of the pushed closure that the cache already holds and whose narinfo is at least this many seconds old (0: every one, on every push), NAR first, dependencies before dependents, with a server-side copy onto itself (new LastModified, same content; the builder's PutObject suffices). Keep it well below the GC's retainDays. A failed refresh is reported and never fails the push.")}`,
    ...(gc ? gcOptionLines(gc, "    ") : []),
    "  };",
    "",
    "  config = lib.mkIf cfg.enable {",
    "    assertions = [",
    "      {",
    "        assertion = isSecretPath cfg.signingKeyFile && lib.all isSecretPath cfg.previousSigningKeyFiles && isSecretPath cfg.awsCredentialsFile;",
    `        message = "${BUILDER_OPTION_PATH}: signingKeyFile, previousSigningKeyFiles and awsCredentialsFile must be absolute paths outside the Nix store (a path in a .nix file is copied to the world-readable store).";`,
    "      }",
    ...(gc ? gcAssertionLines("      ") : []),
    "    ];",
    ...pkiCertificatesLines(caCertificate, "    "),
    "    # The active key first, then the previous keys: Nix signs what it builds with every one of them.",
    "    nix.settings.secret-key-files = [ cfg.signingKeyFile ] ++ cfg.previousSigningKeyFiles;",
    "    nix.settings.post-build-hook = queueHook;",
    '    systemd.tmpfiles.rules = [ "d ${cfg.spoolDir} 0700 root root -" "d ${cfg.spoolDir}/queue 0700 root root -" ];',
    "    systemd.services.nix-cache-push = {",
    '      description = "Push queued Nix build results to the nix-cache binary cache";',
    '      wants = [ "network-online.target" ];',
    '      after = [ "network-online.target" ];',
    "      serviceConfig = {",
    '        Type = "oneshot";',
    "        ExecStart = drain;",
    "        Nice = 10;",
    '        IOSchedulingClass = "idle";',
    "      };",
    "    };",
    "    # Push right after a build queues something ...",
    "    systemd.paths.nix-cache-push = {",
    '      wantedBy = [ "paths.target" ];',
    '      pathConfig.PathChanged = "${cfg.spoolDir}/queue";',
    "    };",
    "    # ... and again every retryInterval, for what a failed run left in the queue.",
    "    systemd.timers.nix-cache-push = {",
    '      wantedBy = [ "timers.target" ];',
    "      timerConfig = {",
    '        OnBootSec = "1min";',
    "        OnUnitActiveSec = cfg.retryInterval;",
    "      };",
    "    };",
    ...(gc ? gcConfigLines(gc, "    ") : []),
    "  };",
    "}",
    "",
  ].join("\n");
}
