#!/usr/bin/env bash
# Builds kind (CLUSTER=kind: Kubernetes in Docker) from source through the Go module proxy,
# once, and caches it outside the repo keyed by version, like hack/build-binaries.sh.
# Prints the path of the kind binary on stdout; everything else goes to stderr.
set -euo pipefail

# v0.30.0 is the release made for Kubernetes 1.34; it still runs nodes on cgroup v1 hosts.
kind_version=${KIND_VERSION:-v0.30.0}
cache_root=${VMROLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrole-operator}
bin_dir="$cache_root/bin/kind-$kind_version"

log() { printf 'build-kind: %s\n' "$*" >&2; }

if [ -x "$bin_dir/kind" ]; then
  echo "$bin_dir/kind"
  exit 0
fi
command -v go >/dev/null || { log "error: go is not installed; it is needed once to build kind"; exit 1; }

tmp_out="$bin_dir.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
log "building kind $kind_version into $bin_dir (go install; a cold build takes a few minutes)"
# Outside any module, so the repo's own go.mod files play no part.
(cd "$tmp_out" && CGO_ENABLED=0 GOBIN="$tmp_out" GOFLAGS=-trimpath \
  go install "sigs.k8s.io/kind@$kind_version")
rm -rf "$bin_dir"
mv "$tmp_out" "$bin_dir"
log "done: $("$bin_dir/kind" version 2>&1 | head -1)"
echo "$bin_dir/kind"
