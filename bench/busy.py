"""5. Busy: taking a ready instance out of rotation without restarting it, and putting it back.

Operator: `vmrole.dev/busy=true` on a pod, until its endpoint is no longer ready in the role's Service;
then `false`, until it is ready again. Floor: the same done by hand on the plain Deployment, a label
its Service selects flipped on the pod (what the operator does for busy). Trials alternate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .common import ratio, summary
from .pair import OPERATOR, Pair, Side
from .workloads import FLOOR_SERVING_LABEL

BUSY_ANNOTATION = "vmrole.dev/busy"


def _flip(side: Side, pod: str, out: bool) -> None:
    if side.kind == OPERATOR:
        patch = {"metadata": {"annotations": {BUSY_ANNOTATION: "true" if out else "false"}}}
    else:
        patch = {"metadata": {"labels": {FLOOR_SERVING_LABEL: "false" if out else "true"}}}
    side.kube.core.patch_namespaced_pod(pod, side.namespace, patch)


def _trial(side: Side, instances: int, index: int, timeout: float) -> dict[str, Any]:
    pod = sorted(side.steady(instances, timeout))[index % instances]
    t0 = time.monotonic()
    _flip(side, pod, out=True)
    out_at = side.endpoints.wait(lambda s: not (s.get(pod) and s[pod].ready), timeout, f"{pod} out")
    t1 = time.monotonic()
    _flip(side, pod, out=False)
    back_at = side.endpoints.wait(lambda s: bool(s.get(pod) and s[pod].ready), timeout, f"{pod} back")
    return {"side": side.kind, "pod": pod, "out_s": round(out_at - t0, 4), "back_s": round(back_at - t1, 4)}


def run(
    pair: Pair, trials: int, timeout: float = 60, guard: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    done = []
    for i in range(trials):
        for side in pair.sides():
            guard()
            done.append(_trial(side, pair.instances, i, timeout))
    result: dict[str, Any] = {"trials_per_arm": trials}
    for phase in ("out", "back"):
        for kind in ("operator", "floor"):
            result[f"{kind}_{phase}"] = summary([t[f"{phase}_s"] for t in done if t["side"] == kind])
        result[f"{phase}_ratio_median"] = ratio(
            result[f"operator_{phase}"]["median"], result[f"floor_{phase}"]["median"]
        )
    result["trials"] = done
    return result
