"""Reimage one instance, surge first, drained, deleted exactly once.

1. The victim leaves the Deployment's pool (IN_POOL_LABEL removed) in one patch that also makes the
   VMRole its owner and records when this began: the ReplicaSet starts the replacement at once while
   the victim still serves.
2. Once the pool is whole again without it (or a deadline passes: no room to surge), the victim
   leaves rotation and its endpoint drains from the input Service's EndpointSlices.
3. It is deleted with its UID as precondition, so a retry can never hit the replacement, and with
   the resourceVersion it was read at, so a deletion by someone else is never repeated.
Every step is re-derived from the pod, so a restarted operator resumes where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .. import constants as c
from .. import metrics
from ..clock import format_time, parse_time
from ..kube.events import EventPoster
from ..models import VMRole
from ..state.instance_state import in_rotation
from ..state.names import name_of
from ..state.requests import (
    is_node_drain_token,
    is_terminating,
    pending_reimage,
    reimage_withdrawn,
    requested_reboot,
)
from .instance_api import POLL_S, InstanceApi
from .rotation import leave_rotation_and_drain

MAX_SURGE_WAIT_S = 300.0
HELD_POLL_S = 2.0


class ReimageSteps:
    def __init__(self, api: InstanceApi, post_event: EventPoster) -> None:
        self.api = api
        self.post_event = post_event

    async def run(self, namespace: str, name: str, uid: str) -> None:
        unheld = await self._unheld_request(namespace, name, uid)
        if unheld is None:
            return
        pod, token, role_body, role = unheld
        annotations = pod["metadata"].get("annotations") or {}
        in_pool = (pod["metadata"].get("labels") or {}).get(c.IN_POOL_LABEL) is not None
        if in_pool or c.REIMAGE_STARTED_ANNOTATION not in annotations:
            now = self.api.clock.now()
            left = await self.api.patch_while(pod, _requested, lambda p: _leave_pool(p, role_body, now))
            if left is None:
                return  # gone, or the request was withdrawn (a node uncordoned) before it began
            self.post_event(pod, "Normal", "ReimageStarted", f"reimage {token}: replacement starting first")
            superseded = requested_reboot(pod)
            if superseded is not None:
                message = f"reboot {superseded} not done: reimage {token} replaces the instance"
                self.post_event(pod, "Normal", "RebootSuperseded", message)
            self.post_event(
                role_body,
                "Normal",
                "ReimageStarted",
                f"reimage {token} of instance {name_of(pod)} (pod {name})",
            )
            pod = left

        waited = await self._surge_wait(pod, role)
        if waited is None:
            return  # the request went away, or the pod did
        pod = waited
        if not await leave_rotation_and_drain(
            self.api, self.post_event, pod, c.OUT_FOR_REIMAGE, role.name, "deleting", still=_requested
        ):
            return
        if not await self._delete_once(namespace, name, uid):
            return
        metrics.count_action("reimage", "succeeded")
        self.post_event(pod, "Normal", "Reimaged", f"reimage {token}: deleted; a fresh instance replaces it")
        self.post_event(
            role_body, "Normal", "Reimaged", f"reimage {token} of instance {name_of(pod)} (pod {name}) done"
        )

    async def _delete_once(self, namespace: str, name: str, uid: str) -> bool:
        """Deletes the victim unless someone else has (a `kubectl delete pod` during the drain ends
        the request: the replacement is there already); False when it did not delete. The delete
        names the pod as just read, so a deletion that slips in between is answered 409, never a
        second successful DELETE."""
        while True:
            pod = await self.api.pod(namespace, name, uid)
            if pod is None or is_terminating(pod):
                return False
            if await self.api.delete(pod):
                return True

    async def _unheld_request(
        self, namespace: str, name: str, uid: str
    ) -> tuple[dict[str, Any], str, dict[str, Any], VMRole] | None:
        """The pod, its reimage token and its role once the role is not paused; None when the
        request went away. A paused role holds the request (a Warning says so) and deletes nothing."""
        held_reported = False
        while True:
            pod = await self.api.pod(namespace, name, uid)
            token = pending_reimage(pod) if pod is not None else None
            if pod is None or token is None:
                return None
            found = await self.api.role_of(pod)
            if found is None:
                return None
            role_body, role = found
            if not role.spec.upgrade.paused:
                return pod, token, role_body, role
            if not held_reported:
                held_reported = True
                message = f"reimage {token} of {name} held: spec.upgrade.paused is true; nothing deleted"
                self.post_event(pod, "Warning", "ReimageHeld", message)
                self.post_event(role_body, "Warning", "ReimageHeld", message)
            await self.api.clock.sleep(HELD_POLL_S)

    async def _surge_wait(self, pod: dict[str, Any], role: VMRole) -> dict[str, Any] | None:
        """While the victim serves, waits for the pool to be whole again without it; returns the pod
        as last read, or None when it or its request went away.

        A user's or healing's reimage goes on after a deadline (no room to surge: the instance is
        replaced in place). A node drain's does not: the disruption budget decides when the victim
        may go, and uncordoning the node withdraws the request."""
        meta = pod["metadata"]
        started = parse_time((meta.get("annotations") or {}).get(c.REIMAGE_STARTED_ANNOTATION))
        wait = timedelta(seconds=min(role.spec.autoStartTimeoutSeconds, MAX_SURGE_WAIT_S))
        deadline = (started or self.api.clock.now()) + wait
        for_drain = is_node_drain_token(pending_reimage(pod))
        while in_rotation(pod) and (for_drain or self.api.clock.now() < deadline):
            if await self.api.pool_ready(meta["namespace"], role):
                break
            await self.api.clock.sleep(POLL_S)
            refreshed = await self.api.pod(meta["namespace"], meta["name"], meta["uid"])
            if refreshed is None or pending_reimage(refreshed) is None:
                return None
            pod = refreshed
        return pod


class WithdrawnReimageSteps:
    """The victim of a withdrawn reimage goes back into the pool; the ReplicaSet then has one
    instance too many and removes one, the replacement first while it is not ready."""

    def __init__(self, api: InstanceApi, post_event: EventPoster) -> None:
        self.api = api
        self.post_event = post_event

    async def run(self, namespace: str, name: str, uid: str) -> None:
        pod = await self.api.pod(namespace, name, uid)
        if pod is None or await self.api.patch_while(pod, reimage_withdrawn, back_to_pool) is None:
            return
        self.post_event(pod, "Normal", "ReimageWithdrawn", "reimage request removed: the instance stays")


def back_to_pool(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Into the ReplicaSet's selector again, and no reimage under way; the request too, if any. The
    role stops being its controller, so the ReplicaSet adopts it again."""
    patch: dict[str, Any] = {
        "labels": {c.IN_POOL_LABEL: "true"},
        "annotations": {c.REIMAGE_ANNOTATION: None, c.REIMAGE_STARTED_ANNOTATION: None},
    }
    refs = [dict(r) for r in (pod.get("metadata") or {}).get("ownerReferences") or []]
    if any(_role_controls(r) for r in refs):
        patch["ownerReferences"] = [dict(r, controller=False) if _role_controls(r) else r for r in refs]
    return {"metadata": patch}


def _role_controls(ref: Mapping[str, Any]) -> bool:
    return (
        bool(ref.get("controller")) and ref.get("kind") == c.KIND and ref.get("apiVersion") == c.API_VERSION
    )


def _requested(pod: Mapping[str, Any]) -> bool:
    return pending_reimage(pod) is not None


def _leave_pool(pod: Mapping[str, Any], role_body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Out of the ReplicaSet's selector, and the start time that bounds the surge wait across
    restarts. The role takes over from the ReplicaSet as the pod's controller: deleting the role
    still collects it, and `kubectl drain` (which refuses pods with no controller unless forced)
    and other eviction tools still treat it as a replicated pod."""
    meta = pod["metadata"]
    role_uid = role_body["metadata"]["uid"]
    refs = [
        dict(r)
        for r in meta.get("ownerReferences") or []
        if not r.get("controller") and r.get("uid") != role_uid
    ]
    refs.append(
        {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "name": role_body["metadata"]["name"],
            "uid": role_uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    )
    started = (meta.get("annotations") or {}).get(c.REIMAGE_STARTED_ANNOTATION) or format_time(now)
    return {
        "metadata": {
            "labels": {c.IN_POOL_LABEL: None},
            "ownerReferences": refs,
            "annotations": {c.REIMAGE_STARTED_ANNOTATION: started},
        }
    }
