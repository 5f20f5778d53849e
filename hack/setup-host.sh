#!/usr/bin/env bash
# Installs everything the local cluster, the operator and the tests need on a fresh Debian machine,
# and nothing when it is all there already. Prints the Python virtualenv's directory on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache_root=${VMROLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrole-operator}
log() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: host parts of the local cluster (ipset for its NetworkPolicy enforcer), the busybox
# of the test images, a C compiler for pause,
# buildah and debootstrap for the operator image (no Docker engine here).
declare -A packages=(
  [containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables-nft]=iptables [conntrack]=conntrack [/bin/busybox]=busybox-static [ip]=iproute2
  [ss]=iproute2 [gcc]=gcc [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev [make]=make [curl]=curl
  [buildah]=buildah [debootstrap]=debootstrap [ipset]=ipset
)
missing=()
for probe in "${!packages[@]}"; do
  if [[ $probe == /* ]]; then [ -e "$probe" ] && continue; else command -v "$probe" >/dev/null && continue; fi
  missing+=("${packages[$probe]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then log "error: missing Debian packages (${missing[*]}) and not root to install them"; exit 1; fi
  mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages: ${unique[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${unique[@]}" >&2
fi

# CLUSTER=kind: Debian's Docker engine. Its maintainer scripts would start dockerd wherever an init
# system lets them; hack/kind/dockerd.py starts it (with its runc wrapper) only while a kind cluster
# runs, so a policy-rc.d keeps the install from starting anything when the machine has none.
if [ "${CLUSTER:-local}" = kind ] && ! command -v dockerd >/dev/null; then
  if [ "$(id -u)" != 0 ]; then log "error: CLUSTER=kind needs Docker (Debian's docker.io) and not root to install it"; exit 1; fi
  log "installing Debian's docker.io for CLUSTER=kind"
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2 || status=$?
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  [ "${status:-0}" = 0 ] || { log "error: installing docker.io failed"; exit 1; }
fi

# Go builds the cluster binaries (once; they are cached). Debian's Go is too old for Kubernetes 1.34.
if ! ls -d "$cache_root"/bin/k8s-* >/dev/null 2>&1; then
  command -v go >/dev/null || { log "error: go (>= 1.24) is needed once to build the Kubernetes binaries"; exit 1; }
  go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [ "$go_minor" -ge 24 ] || { log "error: go $(go env GOVERSION) is too old; Kubernetes 1.34 needs go >= 1.24"; exit 1; }
fi

# Python: one virtualenv per dependency set, outside the repo so fresh clones reuse it.
deps_hash=$(sha256sum "$repo/pyproject.toml" | cut -c1-12)
venv="$cache_root/venv-$deps_hash"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  log "creating the Python virtualenv $venv"
  rm -rf "$venv"
  mkdir -p "$cache_root"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # Dependencies only: the package itself is imported from this checkout (PYTHONPATH=operator).
  mapfile -t reqs < <("$venv/bin/python" - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["dev"]))
EOF
)
  "$venv/bin/python" -m pip install -q "${reqs[@]}" >&2
  touch "$venv/.complete"
fi
echo "$venv"
