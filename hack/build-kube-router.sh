#!/usr/bin/env bash
# Builds kube-router (the local cluster's NetworkPolicy enforcer, run in firewall-only mode) from
# source through the Go module proxy, once, and caches it outside the repo keyed by version, like
# hack/build-binaries.sh. Prints the path of the binary on stdout; everything else goes to stderr.
set -euo pipefail

# v2.1.0 is the newest release the module proxy serves here; later tags are refused.
kube_router_version=${KUBE_ROUTER_VERSION:-v2.1.0}
cache_root=${VMROLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrole-operator}
bin_dir="$cache_root/bin/kube-router-$kube_router_version"

log() { printf 'build-kube-router: %s\n' "$*" >&2; }

if [ -x "$bin_dir/kube-router" ]; then
  echo "$bin_dir/kube-router"
  exit 0
fi
command -v go >/dev/null || { log "error: go is not installed; it is needed once to build kube-router"; exit 1; }

tmp_out="$bin_dir.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
log "building kube-router $kube_router_version into $bin_dir (go install; about 1.5 min cold)"
# Outside any module, so the repo's own go.mod files play no part.
(cd "$tmp_out" && CGO_ENABLED=0 GOBIN="$tmp_out" GOFLAGS="-trimpath -buildvcs=false" \
  go install -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kube_router_version" \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$kube_router_version")
rm -rf "$bin_dir"
mv "$tmp_out" "$bin_dir"
log "done: $("$bin_dir/kube-router" --version 2>&1 | head -1)"
echo "$bin_dir/kube-router"
