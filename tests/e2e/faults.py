"""Faults the e2e tests inject: a component of the local cluster restarted (`make cluster-restart`),
and what every such test checks afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.operator_process import OperatorLog

from .kube import Kube
from .roles import instances
from .traffic import audited_pod_deletes

REPO = Path(__file__).resolve().parents[2]
TIMINGS = REPO / ".cluster" / "logs" / "fault-timings.jsonl"
# What the issue asks of every fault: the operation done this soon after the component serves again.
BACK_WITHIN_S = 60.0


# Before any work: a test that restarts a component has nothing to show on another cluster.
LOCAL_ONLY = pytest.mark.skipif(
    os.environ.get("VMROLE_CLUSTER") != "local",
    reason="restarting one component is done on the local cluster only (make cluster-restart)",
)


def restart_component(component: str) -> float:
    """Restarts one component of the local cluster through the public target; returns the
    monotonic time at which it served again (the target returns only then)."""
    if os.environ.get("VMROLE_CLUSTER") != "local":
        pytest.skip("restarting one component is done on the local cluster only (make cluster-restart)")
    started = time.monotonic()
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "cluster-restart", f"COMPONENT={component}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"make cluster-restart COMPONENT={component}: {result.stderr.strip()}"
    back = time.monotonic()
    record(f"restart {component}", away_s=round(back - started, 1))
    return back


def record(what: str, **numbers: Any) -> None:
    """One line of measurements per fault, for the docs (not asserted here)."""
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    with open(TIMINGS, "a") as f:
        f.write(json.dumps({"what": what, "at": time.strftime("%FT%TZ", time.gmtime()), **numbers}) + "\n")


def done_in_time(what: str, back: float, done: float) -> None:
    took = done - back
    record(what, done_after_back_s=round(took, 1))
    assert took <= BACK_WITHIN_S, f"{what}: done {took:.0f}s after the component served again"


def no_tracebacks(operator: OperatorLog, offset: int) -> None:
    found = operator.tracebacks_since(offset)
    assert not found, "the operator logged tracebacks:\n" + "\n".join(found[:5])


def uids(kube: Kube, namespace: str) -> dict[str, str]:
    """UID -> pod name of the role `web`'s live instances."""
    return {p["metadata"]["uid"]: p["metadata"]["name"] for p in instances(kube, namespace, "web")}


def left_pool(kube: Kube, namespace: str, name: str) -> bool:
    """The pod's reimage has begun: it left the Deployment's pool (its replacement is starting)."""
    return "vmrole.dev/in-pool" not in (kube.pod(namespace, name)["metadata"].get("labels") or {})


def replaced_once(namespace: str, originals: dict[str, str]) -> None:
    """Each of `originals` (UID -> name) deleted exactly once, and no pod twice (audit log)."""
    deletes = audited_pod_deletes(namespace)
    assert all(deletes[name] == 1 for name in originals.values()), deletes
    assert max(deletes.values()) == 1, deletes
