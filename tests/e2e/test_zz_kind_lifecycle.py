"""kind's `cluster-down` puts the host back (the local cluster then comes up cleanly), `cluster-up`
brings kind back, and starting one cluster while the other is up is a one-line error.

Named to run last: it stops and restarts the cluster every other test uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, kubectl

# Serial: it stops the cluster every other test uses.
pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(
        os.environ.get("CLUSTER", "local") != "kind",
        reason="only CLUSTER=kind starts and stops a kind cluster",
    ),
]
CLUSTER_PY = str(REPO / "hack" / "cluster.py")
HOST_BEFORE = Path("/run/vmrole-docker/host-before.json")


def _cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, CLUSTER_PY, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cluster: error: "), result.stderr
    assert text in lines[0], lines[0]


def _sysctl(name: str) -> str:
    return (Path("/proc/sys") / name.replace(".", "/")).read_text().strip()


def _host_state() -> dict[str, object]:
    saved = subprocess.run(["iptables-nft-save"], capture_output=True, text=True, check=True).stdout
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, check=True).stdout
    return {
        "docker_chains": sorted({w[1:] for w in saved.split() if w.startswith(":DOCKER")}),
        "forward_policy": next(line.split()[1] for line in saved.splitlines() if line.startswith(":FORWARD")),
        "interfaces": sorted(
            d.name
            for d in Path("/sys/class/net").iterdir()
            if d.name == "docker0" or d.name.startswith("br-")
        ),
        "cluster_routes": [r for r in routes.splitlines() if r.startswith(("10.244.", "10.96."))],
        "dockerd": _dockerd_running(),
    }


def _dockerd_running() -> bool:
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat.startswith(f"{entry.name} (dockerd) ") and stat.split(") ", 1)[1][0] != "Z":
            return True
    return False


def test_down_restores_the_host_local_runs_then_kind_comes_back() -> None:
    before = json.loads(HOST_BEFORE.read_text()) if HOST_BEFORE.exists() else None

    # The local cluster refuses to start beside Docker.
    _one_line_error(_cluster("up", "--cluster", "local"), "`CLUSTER=kind make cluster-down` first")

    down = _cluster("down", "--cluster", "kind")
    assert down.returncode == 0, down.stdout + down.stderr
    state = _host_state()
    assert state == {
        "docker_chains": [],
        "forward_policy": (before or {}).get("forward_policy", {}).get("iptables-nft", "ACCEPT"),  # type: ignore[union-attr]
        "interfaces": [],
        "cluster_routes": [],
        "dockerd": False,
    }
    if before is not None:  # this run's dockerd was started here: its sysctls are back
        for name, value in before["sysctls"].items():
            assert _sysctl(name) == value, name

    # The local cluster comes up cleanly on the restored host, and kind then refuses to start.
    local = _cluster("up", "--cluster", "local")
    try:
        assert local.returncode == 0, local.stdout + local.stderr
        env = (REPO / ".cluster" / "env").read_text()
        assert "VMROLE_CLUSTER=local" in env
        _one_line_error(_cluster("up", "--cluster", "kind"), "the local cluster is up")
    finally:
        local_down = _cluster("down", "--cluster", "local")
    assert local_down.returncode == 0, local_down.stdout + local_down.stderr

    started = time.monotonic()
    up = _cluster("up", "--cluster", "kind")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"kind cluster-up after down: {time.monotonic() - started:.1f}s")
    nodes = kubectl(
        "--kubeconfig",
        str(REPO / ".cluster" / "kubeconfig"),
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status} {end}",
    ).split()
    assert nodes == ["True", "True", "True"]
    again = _cluster("up", "--cluster", "kind")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already up" in again.stdout, again.stdout
