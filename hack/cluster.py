#!/usr/bin/env python3
"""The test cluster: `up`, `down` and `status` for the local cluster (host processes) or kind, and
`restart` of one component of the local cluster.

  cluster.py up|down|status [--cluster local|kind]
  cluster.py restart --component kube-apiserver|etcd|kubelet|... [--cluster local]

Both write `.cluster/env`; sourcing it sets KUBECONFIG and puts a kubectl matching the server first
on PATH. Errors are one line on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from images import WEB_REPOSITORY, WEB_VERSIONS, build_all, load_archive
from local_cluster.host import ClusterError

REPO = Path(__file__).resolve().parent.parent
CLUSTER_DIR = REPO / ".cluster"
KIND_NAME = os.environ.get("KIND_CLUSTER_NAME", "vmrole")


def binaries() -> Path:
    """Builds (or finds cached) Kubernetes binaries; the path of their directory."""
    cache = Path(
        os.environ.get("VMROLE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vmrole-operator"
    )
    if shutil.which("go") is None and not any((cache / "bin").glob("k8s-*")):
        raise ClusterError("go is not installed: it is needed once, to build the Kubernetes binaries")
    out = subprocess.run(["bash", str(REPO / "hack/build-binaries.sh")], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise ClusterError("building the Kubernetes binaries failed (see the output above)")
    return Path(out.stdout.strip().splitlines()[-1])


def load_test_images(containerd: str | None = None, kind: str | None = None) -> None:
    for version, path in zip(WEB_VERSIONS, build_all(CLUSTER_DIR / "images"), strict=True):
        pinned = load_archive(path.read_bytes(), f"{WEB_REPOSITORY}:{version}", containerd, kind)
        print(f"loaded {WEB_REPOSITORY}:{version} ({pinned})")


def local(verb: str, component: str = "") -> int:
    if os.uname().sysname != "Linux":
        raise ClusterError("the local cluster runs only on Linux; use CLUSTER=kind elsewhere")
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (it runs containerd, kubelet and kube-proxy)")
    from local_cluster.launcher import LocalCluster

    cluster = LocalCluster(CLUSTER_DIR, binaries() if verb == "up" else Path("/nonexistent"))
    if verb == "up":
        from kind.dockerd import dockerd_pids

        docker = dockerd_pids()
        if docker and not cluster.healthy():
            raise ClusterError(
                f"dockerd (pid {docker[0]}) is running, and the local cluster cannot run beside it (it sets "
                "ip_forward, the FORWARD policy and iptables chains): `CLUSTER=kind make cluster-down` first"
            )
        cluster.up()
        # Cheap and idempotent; keeps the node's images in step with hack/images.py.
        load_test_images(containerd=str(cluster.layout.containerd_socket))
        return 0
    if verb == "down":
        cluster.down()
        return 0
    cluster.bin_dir = binaries()
    if verb == "restart":
        if not component:
            raise ClusterError("restart needs a component: COMPONENT=<name> (make) or --component")
        away = cluster.restart(component)
        print(f"{component} restarted and serving again after {away:.1f}s")
        return 0
    return 0 if cluster.status() else 1


def kind(verb: str) -> int:
    from kind.cluster import from_environment

    cluster = from_environment(CLUSTER_DIR, KIND_NAME, binaries(), building=verb == "up")
    if verb == "up":
        cluster.up()
        load_test_images(kind=KIND_NAME)
        return 0
    if verb == "down":
        cluster.down()
        return 0
    return 0 if cluster.status() else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("verb", choices=["up", "down", "status", "restart"])
    parser.add_argument("--cluster", default=os.environ.get("CLUSTER", "local"), choices=["local", "kind"])
    parser.add_argument("--component", default="", help="restart: the component to restart")
    args = parser.parse_args()
    try:
        if args.verb == "restart" and args.cluster != "local":
            raise ClusterError(
                f"restart is not supported on CLUSTER={args.cluster} yet: only the local cluster "
                "(its components are host processes) can restart one component"
            )
        return local(args.verb, args.component) if args.cluster == "local" else kind(args.verb)
    except ClusterError as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cluster: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
