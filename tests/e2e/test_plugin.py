"""`kubectl vmrole`, installed with the package as the console script `kubectl-vmrole`, on the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO
from .kube import Kube
from .roles import create_role, get_role, instances, role_manifest, wait_available

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The package really installed (a wheel build and pip), so kubectl finds `kubectl-vmrole` on PATH."""
    target = tmp_path_factory.mktemp("plugin")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    script = target / "bin" / "kubectl-vmrole"
    assert script.exists(), sorted(p.name for p in (target / "bin").iterdir())
    return {**os.environ, "PATH": f"{target / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(target)}


def _kubectl_vmrole(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "vmrole", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def test_status_and_reimage_all_with_wait(kube: Kube, namespace: str, plugin_env: dict[str, str]) -> None:
    create_role(kube, namespace, role_manifest(instances=2))
    wait_available(kube, namespace, "web", ready=2)
    before = {p["metadata"]["name"] for p in instances(kube, namespace, "web")}

    status = _kubectl_vmrole(plugin_env, "status", "web", "-n", namespace)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].endswith("2/2 ready")
    assert lines[1].split() == ["INSTANCE", "POD", "STATE", "READY", "NODE", "SINCE"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["web_IN_0", "web_IN_1"]
    assert {r[1] for r in rows} == before
    assert all(r[2:4] == ["ReadyRole", "true"] for r in rows), rows

    result = _kubectl_vmrole(plugin_env, "reimage", "web", "--all", "--wait", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert "replaced 0/2" in result.stdout
    assert "replaced 2/2" in result.stdout
    assert result.stdout.rstrip().endswith("vmrole/web: 2/2 instances ready")
    assert not before & {p["metadata"]["name"] for p in instances(kube, namespace, "web")}
    last = get_role(kube, namespace, "web")["status"]["lastReimage"]
    assert last["completedAt"]
    assert f"vmrole.dev/reimage={last['token']}" in result.stdout


def test_unknown_instance_is_an_error_and_writes_nothing(
    kube: Kube, namespace: str, plugin_env: dict[str, str]
) -> None:
    create_role(kube, namespace, role_manifest(instances=1))
    wait_available(kube, namespace, "web", ready=1)
    pod = instances(kube, namespace, "web")[0]
    result = _kubectl_vmrole(plugin_env, "reimage", "web", "no-such-pod", "-n", namespace)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f'error: "no-such-pod" is not an instance of vmrole "web" in namespace "{namespace}"'
    )
    kube.wait_for(
        lambda: "vmrole.dev/instance" in kube.pod(namespace, pod["metadata"]["name"])["metadata"]["labels"],
        30,
        "named",
    )
    busy = _kubectl_vmrole(plugin_env, "busy", "web", "web_IN_0", "--on", "-n", namespace)  # by its name
    assert busy.returncode == 0, busy.stderr
    assert (
        kube.pod(namespace, pod["metadata"]["name"])["metadata"]["annotations"]["vmrole.dev/busy"] == "true"
    )
    missing = _kubectl_vmrole(plugin_env, "status", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert 'vmrole "nope" not found' in missing.stderr
    assert Path(plugin_env["PATH"].split(":")[0], "kubectl-vmrole").exists()
