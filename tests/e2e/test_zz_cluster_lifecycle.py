"""`cluster-down` leaves nothing behind, `cluster-up` brings it back, and misuse fails fast in one line.

Named to run last: it stops and restarts the cluster every other test uses.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, kubectl

pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(
        os.environ.get("CLUSTER", "local") != "local",
        reason="only the local cluster is started and stopped by the suite",
    ),
]
CLUSTER_PY = str(REPO / "hack" / "cluster.py")


def _cluster(
    *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, CLUSTER_PY, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or dict(os.environ),
        check=False,
    )


def _marked_processes() -> list[int]:
    marker = f"VMROLE_CLUSTER_DIR={REPO / '.cluster'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _iptables_chains() -> list[str]:
    chains = []
    for binary in ("iptables-nft-save", "ip6tables-nft-save"):
        for table in ("nat", "filter", "mangle"):
            out = subprocess.run([binary, "-t", table], capture_output=True, text=True, check=False).stdout
            chains += [
                line.split()[0][1:] for line in out.splitlines() if line.startswith((":KUBE-", ":CNI-"))
            ]
    return chains


def test_down_leaves_nothing_then_up_restores_a_working_cluster() -> None:
    down = _cluster("down")
    assert down.returncode == 0, down.stderr

    assert _marked_processes() == []
    assert not Path("/sys/class/net/cni0").exists()
    assert _iptables_chains() == []
    ipsets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=True).stdout
    assert [name for name in ipsets.split() if "KUBE-" in name] == []  # the NetworkPolicy enforcer's
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(REPO / ".cluster") not in mounts
    assert "/run/netns/cni-" not in mounts

    # A port already taken is one clear line and a non-zero exit, not a hang.
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", 2379))
        blocker.listen()
        taken = _cluster("up")
    assert taken.returncode == 1
    assert taken.stderr.strip().splitlines() == [taken.stderr.strip()]
    assert "port 2379 (etcd) is already taken" in taken.stderr

    # Not root: a user namespace without a mapping makes us uid 65534.
    not_root = _cluster("up", prefix=("unshare", "--user"))
    assert not_root.returncode == 1
    assert (
        not_root.stderr.strip()
        == "cluster: error: the local cluster needs root (it runs containerd, kubelet and kube-proxy)"
    )

    # No Go and nothing cached: a one-line error instead of a failed build.
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "VMROLE_CACHE": "/nonexistent/vmrole-cache"}
    no_go = _cluster("up", env=env)
    assert no_go.returncode == 1
    assert (
        no_go.stderr.strip()
        == "cluster: error: go is not installed: it is needed once, to build the Kubernetes binaries"
    )

    up = _cluster("up")
    assert up.returncode == 0, up.stderr
    assert (
        kubectl("get", "node", "-o", "jsonpath={.items[0].status.conditions[?(@.type=='Ready')].status}")
        == "True"
    )

    started = time.monotonic()
    again = _cluster("up")
    assert again.returncode == 0
    assert "already up" in again.stdout
    assert time.monotonic() - started < 10
