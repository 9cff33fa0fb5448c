# shellcheck shell=bash
# nix-cache-drain, the builder's push service (lib/hosts/builderModule.ts drainBody). Pushes every queued path
# in one `nix copy`, deletes the entries only after that succeeded, and keeps them (exit 1) when every attempt
# failed; the timer runs it again later. After a push it refreshes the pushed closure's older cached paths
# (keep-alive.sh, spliced in at its line below). Pushes run with narinfo-cache-positive-ttl = 0: otherwise Nix
# trusts its narinfo disk cache for 30 days and never uploads again a path that the GC collected.
# The module sets these from its options right before this text (delay: seconds, doubled after each failed
# attempt); declared here for shellcheck, which reads this file alone (these lines above the marker are not in
# the module).
declare spool push_url attempts delay
# ---- the module text: lib/hosts/builderModule.ts reads the lines below this one ----
set -u
shopt -s nullglob
queue="$spool/queue"
mkdir -p "$queue"
# One drain at a time: the path unit and the timer may both start it.
exec 9>"$spool/drain.lock"
if ! flock -n 9; then echo "nix-cache: another drain is running"; exit 0; fi

mkdir -p "$spool/tmp"

# Nix would trust its narinfo disk cache for 30 days and skip paths a GC collected since: ask the cache.
push() {
  if [ -n "${NIX_CACHE_PUSH_CMD:-}" ]; then
    local nl=$'\n'
    NIX_CONFIG="${NIX_CONFIG:+$NIX_CONFIG$nl}narinfo-cache-positive-ttl = 0" NIX_CACHE_PUSH_URL="$push_url" \
      sh -c "$NIX_CACHE_PUSH_CMD \"\$@\"" nix-cache-push "$@"
  else
    # `nix copy` belongs to the nix-command feature, which hosts may not have enabled.
    nix --extra-experimental-features nix-command copy --option narinfo-cache-positive-ttl 0 --to "$push_url" "$@"
  fi
}

# @splice keep-alive.sh


# The store paths of queue entries: their `out` lines, or the outputs of their `drv` when there are none.
entry_paths() {
  local entry outs drvs
  for entry in "$@"; do
    outs=$(sed -n 's/^out //p' "$entry")
    if [ -n "$outs" ]; then
      printf '%s\n' "$outs"
    else
      # One argument per line: an unquoted list would also expand a `*` in an entry as a file name pattern.
      mapfile -t drvs < <(sed -n 's/^drv //p' "$entry")
      if [ "${#drvs[@]}" -gt 0 ]; then nix-store --query --outputs "${drvs[@]}" 2>/dev/null || true; fi
    fi
  done | sort -u
}

for _ in 1 2 3 4 5; do # five rounds at most: entries queued while pushing are pushed in the next round
  entries=("$queue"/*)
  if [ "${#entries[@]}" -eq 0 ]; then exit 0; fi
  mapfile -t queued < <(entry_paths "${entries[@]}")
  # Paths deleted since they were built (garbage collection) can never be pushed: drop them, with a note.
  paths=()
  if [ "${#queued[@]}" -gt 0 ]; then
    if invalid=$(nix-store --check-validity --print-invalid "${queued[@]}" 2>/dev/null); then
      mapfile -t gone <<< "$invalid"
    else # a malformed entry fails the whole query: ask path by path
      gone=()
      for p in "${queued[@]}"; do nix-store --check-validity "$p" 2>/dev/null || gone+=("$p"); done
    fi
    for p in "${queued[@]}"; do
      if printf '%s\n' "${gone[@]}" | grep -qxF "$p"; then
        echo "nix-cache: $p is no longer in the store; dropping it"
      else
        paths+=("$p")
      fi
    done
  fi
  if [ "${#paths[@]}" -gt 0 ]; then
    wait_s=$delay
    for ((attempt = 1; ; attempt++)); do
      if push "${paths[@]}"; then break; fi
      if [ "$attempt" -ge "$attempts" ]; then
        echo "nix-cache: pushing ${#paths[@]} paths to $push_url failed $attempts times; they stay queued in $queue" >&2
        exit 1
      fi
      echo "nix-cache: push attempt $attempt/$attempts failed; retrying in ${wait_s}s" >&2
      sleep "$wait_s"
      wait_s=$((wait_s * 2))
    done
    echo "nix-cache: pushed ${#paths[@]} paths to $push_url"
  fi
  rm -f -- "${entries[@]}"
  if [ "${#paths[@]}" -gt 0 ]; then refresh_closure "${paths[@]}"; fi
done
