# shellcheck shell=bash
# nix-cache-queue, the builder's post-build hook (lib/hosts/builderModule.ts queueHookBody). Nix runs it
# synchronously after every build and stops building when it fails, so it only writes one queue entry (no
# network, no store access) and always exits 0. An entry lists `out PATH` lines from OUT_PATHS and a
# `drv PATH` line from DRV_PATH: Nix 2.8.0 runs the hook with an empty OUT_PATHS (NixOS/nix#6446), and the
# drain then asks the store for the outputs.
# The module sets spool from its options right before this text; declared here for shellcheck, which reads
# this file alone (these lines above the marker are not in the module).
declare spool
# ---- the module text: lib/hosts/builderModule.ts reads the lines below this one ----
# Called by Nix after each build with OUT_PATHS (space-separated) and DRV_PATH set.
set -f # store paths are words, never globs
queue_entry() {
  umask 077
  mkdir -p "$spool/queue" "$spool/tmp" || return 1
  local tmp; tmp=$(mktemp "$spool/tmp/entry.XXXXXXXX") || return 1
  {
    for p in ${OUT_PATHS:-}; do printf 'out %s\n' "$p"; done
    if [ -n "${DRV_PATH:-}" ]; then printf 'drv %s\n' "$DRV_PATH"; fi
  } > "$tmp" || { rm -f "$tmp"; return 1; }
  # The rename makes the entry appear whole; the name sorts entries by time.
  mv "$tmp" "$spool/queue/$(date +%s%N)-${tmp##*.}"
}
queue_entry 2>/dev/null || echo "nix-cache: could not queue ${OUT_PATHS:-$DRV_PATH} in $spool; the build is fine, the push is skipped" >&2
exit 0
