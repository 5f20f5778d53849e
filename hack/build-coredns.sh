#!/usr/bin/env bash
# Builds CoreDNS, the cluster DNS of both test clusters, from source through the Go module proxy,
# once, and caches it outside the repo keyed by version, like hack/build-kwok.sh.
# The version is the one kubeadm v1.34 deploys (cmd/kubeadm/app/constants: CoreDNSVersion), so the
# kind nodes carry the image name kubeadm asks for and its Corefile migration knows the version.
# Prints the path of the coredns binary on stdout; everything else goes to stderr.
set -euo pipefail

coredns_version=${COREDNS_VERSION:-v1.12.1}
cache_root=${VMROLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrole-operator}
bin_dir="$cache_root/bin/coredns-$coredns_version"

log() { printf 'build-coredns: %s\n' "$*" >&2; }

if [ -x "$bin_dir/coredns" ]; then
  echo "$bin_dir/coredns"
  exit 0
fi
command -v go >/dev/null || { log "error: go is not installed; it is needed once to build CoreDNS"; exit 1; }

tmp_out="$bin_dir.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
log "building CoreDNS $coredns_version into $bin_dir (go install; a cold build takes a few minutes)"
# Outside any module, so the repo's own go.mod files play no part.
(cd "$tmp_out" && CGO_ENABLED=0 GOBIN="$tmp_out" GOFLAGS=-trimpath \
  go install -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_version" \
  "github.com/coredns/coredns@$coredns_version")
rm -rf "$bin_dir"
mv "$tmp_out" "$bin_dir"
log "done: $("$bin_dir/coredns" -version 2>&1 | head -1)"
echo "$bin_dir/coredns"
