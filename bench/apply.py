"""2. Apply to available: a VMRole of 3 instances against the equivalent plain Deployment and Service.

Each trial creates the objects and stops the clock when all 3 pods are ready endpoints of the
Service (in rotation), then deletes them and waits until their pods are gone. Arms alternate:
operator (spec.image a tag, as users write it: the operator first pins it with a resolver pod),
floor (Deployment + Service, the same tag), operator with a digest in spec.image (no resolver pod).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.rest import ApiException

from .common import (
    WEB_IMAGE,
    AuditLog,
    EndpointWatcher,
    Kube,
    ratio,
    ready_pods,
    summary,
    wait_for,
    web_digest_image,
)
from .phases import apply_phases
from .workloads import floor_objects, floor_selector, role_manifest, role_selector

ARMS = ("operator", "floor", "operator_digest")


def _trial(
    kube: Kube, namespace: str, arm: str, index: int, instances: int, timeout: float
) -> dict[str, Any]:
    name = f"{arm.replace('_', '-')}-{index}"
    image = web_digest_image() if arm == "operator_digest" else f"{WEB_IMAGE}:1"
    role = role_manifest(name, instances=instances, image=image)
    selector = floor_selector(name) if arm == "floor" else role_selector(name)
    with EndpointWatcher(kube, namespace, name) as endpoints:
        wall = time.time()
        t0 = time.monotonic()
        if arm == "floor":
            deployment, service = floor_objects(role, name, image)
            kube.apps.create_namespaced_deployment(namespace, deployment)
            kube.core.create_namespaced_service(namespace, service)
        else:
            kube.create_role(namespace, role)
        t_ready = endpoints.wait(
            lambda s: len(ready_pods(s)) >= instances, timeout, f"{instances} ready endpoints of {name}"
        )
    seconds = t_ready - t0
    available_s = None
    if arm != "floor":

        def available() -> bool:
            status = kube.get_role(namespace, name).get("status") or {}
            conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
            return status.get("readyReplicas") == instances and conds.get("Available") == "True"

        wait_for(available, timeout, f"role {name} Available", interval=0.1)
        available_s = round(time.monotonic() - t0, 4)
    # Clean slate for the next trial: everything deleted and every pod gone.
    if arm == "floor":
        with contextlib.suppress(ApiException):
            kube.apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
        with contextlib.suppress(ApiException):
            kube.core.delete_namespaced_service(name, namespace)
    else:
        kube.delete_role(namespace, name)
    wait_for(lambda: not kube.pods(namespace, selector), timeout, f"pods of {name} gone", interval=0.3)
    return {
        "arm": arm,
        "name": name,
        "seconds": round(seconds, 4),
        "status_available_s": available_s,
        "wall_start": wall,
    }


def run(
    kube: Kube,
    namespace: str,
    trials: int,
    instances: int = 3,
    timeout: float = 180,
    guard: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    audit = AuditLog()
    mark = audit.mark() if audit.available else None
    done = []
    for i in range(trials):
        for arm in ARMS:
            guard()
            done.append(_trial(kube, namespace, arm, i, instances, timeout))
    samples = {arm: [t["seconds"] for t in done if t["arm"] == arm] for arm in ARMS}
    stats = {arm: summary(samples[arm]) for arm in ARMS}
    status_available = summary(
        [t["status_available_s"] for t in done if t["arm"] == "operator" and t["status_available_s"]]
    )
    return {
        "trials_per_arm": trials,
        "instances": instances,
        **stats,
        "operator_median_s": stats["operator"]["median"],
        "floor_median_s": stats["floor"]["median"],
        "operator_digest_median_s": stats["operator_digest"]["median"],
        "ratio_median": ratio(stats["operator"]["median"], stats["floor"]["median"]),
        # The same as ratio_median (a tag on both sides), under the name the targets use.
        "tag_ratio_median": ratio(stats["operator"]["median"], stats["floor"]["median"]),
        "ratio_p90": ratio(stats["operator"]["p90"], stats["floor"]["p90"]),
        "ratio_median_digest": ratio(stats["operator_digest"]["median"], stats["floor"]["median"]),
        "operator_status_available": status_available,
        "samples_s": samples,
        "phases": apply_phases(audit.writes(mark, namespace), done) if mark is not None else {},
        "order": [f"{t['arm']}:{t['seconds']}" for t in done],
    }
