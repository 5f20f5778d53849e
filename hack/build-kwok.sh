#!/usr/bin/env bash
# Builds kwok (fake nodes and pods for the scale benchmark) from source through the Go module proxy,
# once, and caches it outside the repo keyed by version, like hack/build-binaries.sh.
# Prints the path of the kwok binary on stdout; everything else goes to stderr.
set -euo pipefail

kwok_version=${KWOK_VERSION:-v0.8.0}
cache_root=${VMROLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrole-operator}
bin_dir="$cache_root/bin/kwok-$kwok_version"

log() { printf 'build-kwok: %s\n' "$*" >&2; }

if [ -x "$bin_dir/kwok" ]; then
  echo "$bin_dir/kwok"
  exit 0
fi
command -v go >/dev/null || { log "error: go is not installed; it is needed once to build kwok"; exit 1; }

tmp_out="$bin_dir.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
log "building kwok $kwok_version into $bin_dir (go install; a cold build takes a few minutes)"
# Outside any module, so the repo's own go.mod files play no part.
(cd "$tmp_out" && CGO_ENABLED=0 GOBIN="$tmp_out" GOFLAGS=-trimpath \
  go install "sigs.k8s.io/kwok/cmd/kwok@$kwok_version")
rm -rf "$bin_dir"
mv "$tmp_out" "$bin_dir"
log "done: $("$bin_dir/kwok" --version 2>&1 | head -1)"
echo "$bin_dir/kwok"
