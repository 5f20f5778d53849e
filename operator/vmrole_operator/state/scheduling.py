"""Is there room for the role's instances? Read from the scheduler's verdict on its pods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import constants as c
from .instance_state import list_of, map_of, metadata_of, pod_status_of


def unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's reason when it found no node for the pod, else None."""
    if metadata_of(pod).get("deletionTimestamp"):
        return None
    for condition in list_of(pod_status_of(pod).get("conditions")):
        condition = map_of(condition)
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or "no node fits")
    return None


def unschedulable_instances(pods: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(pod name, scheduler message) of the Deployment's own instances that found no node. A pool
    instance with no node is what a surge-first replacement would be too: no room to surge."""
    found = []
    for pod in pods:
        labels = map_of(metadata_of(pod).get("labels"))
        message = unschedulable_message(pod)
        if message is not None and labels.get(c.IN_POOL_LABEL) == "true":
            found.append((str(metadata_of(pod).get("name", "")), message))
    return sorted(found)


def room_to_surge(pods: Sequence[Mapping[str, Any]]) -> bool:
    return not unschedulable_instances(pods)
