"""The VMRole's status, computed purely from its pods and Deployment.

Every timestamp in the output is derived from timestamps already in the pods (or the previous
status), never from the clock, so recomputing the status when nothing changed gives identical
output and the operator writes nothing. `now` is used only to decide whether a deadline passed
and to stamp a condition whose status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import constants as c
from ..clock import format_time
from ..models import VMRole
from ..specs.auto_start import auto_start_plan
from .instance_state import (
    FAILING_STATES,
    InstanceState,
    container_status,
    instance_state,
    list_of,
    map_of,
    metadata_of,
    pod_status_of,
)
from .names import instance_number, name_of
from .problems import Problem
from .scheduling import unschedulable_instances

_MAX_NAMED_IN_MESSAGE = 10


def _condition_entry(
    type_: str, status: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """`new` conditions with lastTransitionTime: kept from `previous` when the status is unchanged."""
    before = {str(cond.get("type")): cond for cond in previous or [] if isinstance(cond, Mapping)}
    merged = []
    for cond in new:
        entry = dict(cond)
        old = before.get(str(cond.get("type")))
        if old is not None and old.get("status") == cond.get("status") and old.get("lastTransitionTime"):
            entry["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            entry["lastTransitionTime"] = format_time(now)
        merged.append(entry)
    return merged


def _instance_entry(
    pod: Mapping[str, Any], now: datetime, timeout_s: int, main_check: str | None
) -> dict[str, Any]:
    state, since, message = instance_state(pod, now, timeout_s, main_check)
    main = container_status(pod, c.MAIN_CONTAINER)
    restarts = main.get("restartCount", 0) if main is not None else 0
    entry: dict[str, Any] = {
        "name": name_of(pod),
        "pod": str(metadata_of(pod).get("name", "")),
        "state": state.value,
        "ready": state is InstanceState.READY_ROLE,
        "restarts": restarts if isinstance(restarts, int) else 0,
    }
    pod_ip = pod_status_of(pod).get("podIP")
    if pod_ip:
        entry["podIP"] = str(pod_ip)
    node = map_of(pod.get("spec")).get("nodeName")
    if node:
        entry["node"] = str(node)
    if since is not None:
        entry["since"] = format_time(since)
    if message:
        entry["message"] = message
    return entry


def _by_number(role: str, pod: Mapping[str, Any]) -> tuple[int, str, str]:
    name = name_of(pod)
    number = instance_number(role, name)
    return (number if number is not None else 2**31, name, str(metadata_of(pod).get("name", "")))


def _available(role: VMRole, ready: int, generation: int | None) -> dict[str, Any]:
    wanted = role.spec.instances
    if wanted == 0:
        return _condition_entry(
            c.CONDITION_AVAILABLE, True, "MinimumInstancesReady", "no instances requested", generation
        )
    # At least one instance must serve, even when maxUnavailable >= instances: a role with nothing
    # in rotation is not available, whatever the rollout budget allows.
    required = max(1, wanted - role.spec.upgrade.maxUnavailable)
    message = f"{ready} of {wanted} instances ready (at least {required} required)"
    if ready >= required:
        return _condition_entry(c.CONDITION_AVAILABLE, True, "MinimumInstancesReady", message, generation)
    return _condition_entry(c.CONDITION_AVAILABLE, False, "InstancesUnavailable", message, generation)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _progressing(
    role: VMRole, deployment: Mapping[str, Any] | None, pinned: bool, generation: int | None
) -> dict[str, Any]:
    wanted = role.spec.instances

    def progressing(reason: str, message: str) -> dict[str, Any]:
        return _condition_entry(c.CONDITION_PROGRESSING, True, reason, message, generation)

    if not pinned and wanted > 0:
        return progressing("PinningImage", f"resolving {role.spec.image} to a digest (resolver pod)")
    if deployment is None:
        return progressing("Creating", "creating the role's Deployment")
    dep_meta = map_of(deployment.get("metadata"))
    dep_status = map_of(deployment.get("status"))
    if _int(dep_status.get("observedGeneration")) < _int(dep_meta.get("generation")):
        return progressing("RollingOut", "waiting for the Deployment controller to see the change")
    updated = _int(dep_status.get("updatedReplicas"))
    existing = _int(dep_status.get("replicas"))
    if updated < wanted or existing > wanted:
        message = f"{updated} of {wanted} instances updated, {existing} exist"
        if role.spec.upgrade.paused:
            return _condition_entry(
                c.CONDITION_PROGRESSING,
                False,
                "RolloutPaused",
                f"paused (spec.upgrade.paused): {message}",
                generation,
            )
        return progressing("RollingOut", message)
    return _condition_entry(
        c.CONDITION_PROGRESSING, False, "RolloutComplete", f"{wanted} instances up to date", generation
    )


def _degraded(
    instances: Sequence[Mapping[str, Any]], problems: Sequence[Problem], generation: int | None
) -> dict[str, Any]:
    failing = [i for i in instances if i["state"] in FAILING_STATES]
    parts = [p.message for p in problems]
    if failing:
        named = [f"{i['name']} is {i['state']}" for i in failing[:_MAX_NAMED_IN_MESSAGE]]
        more = len(failing) - len(named)
        parts.append(", ".join(named) + (f" and {more} more" if more > 0 else ""))
    if not parts:
        return _condition_entry(
            c.CONDITION_DEGRADED, False, "AllInstancesHealthy", "no instance is failing", generation
        )
    reason = problems[0].reason if problems else "InstancesFailing"
    return _condition_entry(c.CONDITION_DEGRADED, True, reason, "; ".join(parts), generation)


def _schedulable(role: VMRole, pods: Sequence[Mapping[str, Any]], generation: int | None) -> dict[str, Any]:
    stuck = unschedulable_instances(pods)
    if not stuck:
        return _condition_entry(
            c.CONDITION_SCHEDULABLE, True, "AllInstancesScheduled", "every instance has a node", generation
        )
    pod, message = stuck[0]
    more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
    strict = " under spec.spread Required (one instance per node)" if role.spec.spread == "Required" else ""
    budget = role.spec.upgrade.maxUnavailable
    text = (
        f"pod {pod}{more} has no node{strict}: {message}. No room to surge: a node drain "
        f"evicts spec.upgrade.maxUnavailable ({budget}) at a time instead of replacing first"
    )
    return _condition_entry(c.CONDITION_SCHEDULABLE, False, "NoRoomToSurge", text, generation)


def compute_status(
    role: VMRole,
    pods: Sequence[Mapping[str, Any]],
    deployment: Mapping[str, Any] | None,
    pinned_image: str | None,
    spec_image_pinned_from: str | None,
    previous_status: Mapping[str, Any] | None,
    now: datetime,
    problems: Sequence[Problem] = (),
) -> dict[str, Any]:
    """The VMRole's status (camelCase, JSON-ready) from its pods and Deployment.

    `pinned_image`/`spec_image_pinned_from` are the digest reference in use and the spec.image it
    was resolved from; the image counts as pinned only while the latter equals spec.image.
    `problems` (state/problems.py), most specific first, make the role Degraded.
    """
    previous = previous_status or {}
    generation = role.metadata.get("generation")
    generation = generation if isinstance(generation, int) else None
    timeout_s = role.spec.autoStartTimeoutSeconds

    ordered = sorted(pods, key=lambda pod: _by_number(role.name, pod))
    main_check, _ = auto_start_plan(role.spec.autoStart)
    instances = [
        _instance_entry(pod, now, timeout_s, main_check.name if main_check else None) for pod in ordered
    ]
    ready = sum(1 for i in instances if i["state"] == InstanceState.READY_ROLE)
    replicas = sum(1 for i in instances if i["state"] != InstanceState.STOPPING_ROLE)
    pinned = pinned_image is not None and spec_image_pinned_from == role.spec.image

    conditions = merge_conditions(
        list_of(previous.get("conditions")),
        [
            _available(role, ready, generation),
            _progressing(role, deployment, pinned, generation),
            _degraded(instances, problems, generation),
            _schedulable(role, pods, generation),
        ],
        now,
    )

    status: dict[str, Any] = {}
    if generation is not None:
        status["observedGeneration"] = generation
    if pinned_image is not None:
        status["image"] = pinned_image
    if spec_image_pinned_from is not None:
        status["specImage"] = spec_image_pinned_from
    status["replicas"] = replicas
    status["readyReplicas"] = ready
    status["selector"] = f"{c.ROLE_LABEL}={role.name}"
    status["instances"] = instances
    status["conditions"] = conditions
    last_reimage = previous.get("lastReimage")
    if isinstance(last_reimage, Mapping):
        status["lastReimage"] = dict(last_reimage)
    status["heals"] = _int(previous.get("heals"))
    if previous.get("recentHeals"):
        status["recentHeals"] = [dict(h) for h in list_of(previous.get("recentHeals"))]
    return status
