#!/usr/bin/env bash
# Builds the Kubernetes and etcd binaries of the local cluster from source through the Go module
# proxy, and caches them outside the repo, keyed by version, so later runs skip the build.
# Prints the bin directory on stdout; everything else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '/^require k8s.io\/kubernetes /{print $3}' "$here/k8s-build/go.mod")
etcd_version=$(awk '/^require go.etcd.io\/etcd\/server\/v3 /{print $3}' "$here/etcd-build/go.mod")
cache_root=${VMROLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrole-operator}
bin_dir="$cache_root/bin/k8s-$k8s_version-etcd-$etcd_version"
# kubeadm only serves the kind node image (hack/kind/node_image.py); the local cluster does without it.
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)

log() { printf 'build-binaries: %s\n' "$*" >&2; }

complete() {
  for b in "${k8s_cmds[@]}" etcd pause; do [ -x "$bin_dir/$b" ] || return 1; done
}

if complete; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { log "error: go is not installed; it is needed once to build the cluster binaries"; exit 1; }
command -v gcc >/dev/null || { log "error: gcc is not installed; it is needed to build the pause program"; exit 1; }

# A cache made before a command joined the list keeps what it has; only the missing commands build.
missing=()
for c in "${k8s_cmds[@]}"; do [ -x "$bin_dir/$c" ] || missing+=("$c"); done
tmp_out="$bin_dir.partial"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"

# Upstream stamps versions through these variables; without them every binary says v0.0.0-master.
minor=$(echo "$k8s_version" | cut -d. -f2)
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

if [ -x "$bin_dir/etcd" ] && [ -x "$bin_dir/pause" ] && [ ${#missing[@]} -lt ${#k8s_cmds[@]} ]; then
  log "adding ${missing[*]} to $bin_dir"
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$here/k8s-build" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags selinux,notest \
    -ldflags "$ldflags" -o "$tmp_out/" "${pkgs[@]}")
  for c in "${missing[@]}"; do mv "$tmp_out/$c" "$bin_dir/$c"; done
  rm -rf "$tmp_out"
  echo "$bin_dir"
  exit 0
fi

log "building Kubernetes $k8s_version (${k8s_cmds[*]}) into $bin_dir; a cold build takes a while"
pkgs=()
for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
(cd "$here/k8s-build" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags selinux,notest \
  -ldflags "$ldflags" -o "$tmp_out/" "${pkgs[@]}")

log "building etcd $etcd_version"
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=release-${etcd_version}"
(cd "$here/etcd-build" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$etcd_ldflags" \
  -o "$tmp_out/etcd" go.etcd.io/etcd/server/v3)

# The sandbox image's program: upstream's pause.c, compiled statically from the module cache.
pause_src=$(cd "$here/k8s-build" && go list -mod=mod -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
log "building pause from $pause_src"
gcc -Os -static -Wall -Werror -DVERSION="v3.10-vmrole" -o "$tmp_out/pause" "$pause_src"
strip "$tmp_out/pause"

rm -rf "$bin_dir"
mv "$tmp_out" "$bin_dir"
log "done: $("$bin_dir/kube-apiserver" --version)"
echo "$bin_dir"
