"""Soak (`make soak`, never in `make test`): the operator killed with SIGKILL at a random moment of
each of many operations, round robin over reimage-one, reimage-all, reboot and an image upgrade;
after each, every instance it touched was handled exactly once.

Exactly once is read from the cluster, not the operator: pod deletions from the API server's audit
log, container restarts from the kubelet's restart count."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.operator_process import OperatorProcess

from .conftest import REPO, kubectl
from .kube import Kube
from .roles import get_role, instances, patch_role, ready_role, settled
from .traffic import instance_deletes

TRIALS = int(os.environ.get("VMROLE_SOAK_TRIALS") or 0)
KINDS = ("reimage-one", "reimage-all", "reboot", "upgrade")
SEED = int(os.environ.get("VMROLE_SOAK_SEED") or 20261129)

pytestmark = [
    pytest.mark.soak,
    pytest.mark.serial,
    pytest.mark.skipif(not TRIALS, reason="the soak runs with `make soak` (VMROLE_SOAK_TRIALS)"),
]


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in pod["status"]["containerStatuses"] if s["name"] == "role"))


def _status(kube: Kube, namespace: str) -> dict[str, Any]:
    return dict(get_role(kube, namespace, "web").get("status") or {})


@pytest.mark.timeout(60 + TRIALS * 240)
def test_operator_killed_during_every_kind_of_operation(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ready_role(kube, namespace, 2, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    rng = random.Random(SEED)
    trials: list[dict[str, Any]] = []
    image = 1
    for trial in range(TRIALS):
        kind = KINDS[trial % len(KINDS)]
        pods = instances(kube, namespace, "web")
        before = {p["metadata"]["uid"]: p["metadata"]["name"] for p in pods}
        token = f"soak-{trial}"
        started = time.monotonic()
        done: Callable[[], bool]
        if kind == "reimage-one":
            victim = pods[trial % len(pods)]
            expected = {victim["metadata"]["name"]}
            kubectl(
                "annotate", "pod", "-n", namespace, victim["metadata"]["name"], f"vmrole.dev/reimage={token}"
            )
            done = lambda v=victim["metadata"]["uid"]: settled(kube, namespace, 2, {v})  # noqa: E731
        elif kind == "reimage-all":
            expected = set(before.values())
            kubectl(
                "annotate", "vmrole", "web", "-n", namespace, f"vmrole.dev/reimage={token}", "--overwrite"
            )

            def done(t: str = token, gone: frozenset[str] = frozenset(before)) -> bool:
                last = _status(kube, namespace).get("lastReimage") or {}
                return (
                    last.get("token") == t
                    and bool(last.get("completedAt"))
                    and settled(kube, namespace, 2, set(gone))
                )

        elif kind == "reboot":
            victim = pods[trial % len(pods)]
            name, restarts = victim["metadata"]["name"], _main(victim)["restartCount"]
            expected = set()
            kubectl("annotate", "pod", "-n", namespace, name, f"vmrole.dev/reboot={token}", "--overwrite")

            def done(n: str = name, r: int = restarts, t: str = token) -> bool:
                pod = kube.pod(namespace, n)
                return (
                    _main(pod)["restartCount"] > r
                    and pod["metadata"]["annotations"].get("vmrole.dev/reboot-done") == t
                    and pod["metadata"]["labels"].get("vmrole.dev/in-rotation") == "true"
                    and settled(kube, namespace, 2, set())
                )

        else:
            image = 2 if image == 1 else 1
            expected = set(before.values())
            patch_role(kube, namespace, "web", {"spec": {"image": f"localhost/vmrole-test/web:{image}"}})

            def done(i: int = image, gone: frozenset[str] = frozenset(before)) -> bool:
                status = _status(kube, namespace)
                return (
                    status.get("specImage", "").endswith(f":{i}")
                    and settled(kube, namespace, 2, set(gone))
                    and all(
                        p["spec"]["containers"][0]["image"] == status["image"]
                        for p in instances(kube, namespace, "web")
                    )
                )

        kill_after = rng.uniform(0.0, 4.0)
        time.sleep(kill_after)
        operator.stop(signal.SIGKILL)
        time.sleep(rng.uniform(0.0, 1.0))
        operator.start()
        kube.wait_for(done, 180, f"trial {trial} ({kind}) completed")
        took = time.monotonic() - started

        deletes = instance_deletes(namespace)
        outcome: dict[str, Any] = {"trial": trial, "kind": kind, "killed_after_s": round(kill_after, 2)}
        outcome["took_s"] = round(took, 1)
        outcome["deleted"] = {n: deletes[n] for n in sorted(before.values())}
        if kind == "reboot":
            pod = kube.pod(namespace, name)
            outcome["restarts"] = _main(pod)["restartCount"] - restarts
            outcome["ok"] = outcome["restarts"] == 1 and not any(deletes[n] for n in before.values())
        else:
            outcome["ok"] = all(deletes[n] == (1 if n in expected else 0) for n in before.values())
        trials.append(outcome)
        print(json.dumps(outcome), flush=True)

    deletes = instance_deletes(namespace)
    summary = {
        "date": time.strftime("%F", time.gmtime()),
        "trials": len(trials),
        "by_kind": {k: sum(1 for t in trials if t["kind"] == k) for k in KINDS},
        "handled_exactly_once": sum(1 for t in trials if t["ok"]),
        "instance_pods_deleted": sum(deletes.values()),
        "most_deletes_of_one_pod": max(deletes.values(), default=0),
        "median_trial_s": sorted(t["took_s"] for t in trials)[len(trials) // 2],
        "seed": SEED,
    }
    out = REPO / "build" / "soak"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{summary['date']}.json").write_text(json.dumps({"summary": summary, "trials": trials}, indent=1))
    print("soak:", json.dumps(summary), flush=True)
    assert [t for t in trials if not t["ok"]] == []
    assert summary["most_deletes_of_one_pod"] == 1
