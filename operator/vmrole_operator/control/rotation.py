"""Busy, and back into rotation after a reboot: the instance's IN_ROTATION_LABEL follows its requests.

The input Service selects `IN_ROTATION_LABEL=true`; the pod template sets it, so a new instance
needs no operator to enter rotation. The operator changes it only to take a ready instance out: the
value names why ("busy", "reimage", "reboot"). A busy instance stays kubelet-Ready, so the
Deployment and a PodDisruptionBudget still count it available; it only stops taking traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import constants as c
from .. import metrics
from ..kube.events import EventPoster
from ..state.requests import rotation_wanted
from .instance_api import DRAIN_TIMEOUT_S, InstanceApi, PodCheck


def rotation_out_of_step(pod: Mapping[str, Any]) -> bool:
    """The rotation label disagrees with what the instance's requests want."""
    wanted = rotation_wanted(pod)
    if wanted is None:
        return False
    label = (pod["metadata"].get("labels") or {}).get(c.IN_ROTATION_LABEL)
    return (label == c.IN_ROTATION) != wanted


class RotationSteps:
    def __init__(self, api: InstanceApi, post_event: EventPoster) -> None:
        self.api = api
        self.post_event = post_event

    async def run(self, namespace: str, name: str, uid: str) -> None:
        pod = await self.api.pod(namespace, name, uid)
        if pod is None or not rotation_out_of_step(pod):
            return
        wanted = rotation_wanted(pod)
        previous = (pod["metadata"].get("labels") or {}).get(c.IN_ROTATION_LABEL)
        if not await self.api.label_rotation(pod, c.IN_ROTATION if wanted else c.OUT_FOR_BUSY):
            return
        metrics.count_action("rotation", "succeeded")
        if not wanted:
            self.post_event(pod, "Normal", "InstanceBusy", f"{c.BUSY_ANNOTATION}=true: out of rotation")
        elif previous == c.OUT_FOR_BUSY:
            self.post_event(pod, "Normal", "InstanceNotBusy", "busy cleared: back in rotation")


async def leave_rotation_and_drain(
    api: InstanceApi,
    post_event: EventPoster,
    pod: Mapping[str, Any],
    why: str,
    service: str,
    then: str,
    still: PodCheck | None = None,
) -> bool:
    """Takes a ready instance out of rotation (the label names `why`) and waits until its endpoint
    has drained; False when the pod is gone or replaced, or `still` stopped holding before it left.
    A drain that times out is told, and the caller goes on to `then` anyway."""
    if not await api.label_rotation(pod, why, still):
        return False
    if not await api.wait_drained(pod["metadata"]["namespace"], service, pod):
        message = f"endpoint still ready after {DRAIN_TIMEOUT_S:.0f}s; {then} anyway"
        post_event(pod, "Warning", "DrainTimeout", message)
    return True
