"""What the instance operations read and write, async: the blocking client runs in threads.

Reads always name the incarnation (pod UID) they are about, and every write carries it as a
precondition, so a step that outlived its pod never touches the pod's successor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .. import constants as c
from ..clock import Clock, format_time
from ..kube.api import ENDPOINT_SLICES, MERGE_PATCH, PODS, STRATEGIC_MERGE_PATCH, KubeApi
from ..kube.errors import GONE, GONE_OR_REPLACED, unless
from ..models import VMRole
from ..state.instance_state import in_rotation
from .role_reader import RoleRead, RoleReader

T = TypeVar("T")

POLL_S = 0.25
DRAIN_TIMEOUT_S = 30.0
MAX_CONFLICTS = 10  # re-reads after a concurrent change before giving up until the next pod event

PodCheck = Callable[[Mapping[str, Any]], bool]
PodPatch = Callable[[Mapping[str, Any]], dict[str, Any]]


class InstanceApi:
    def __init__(self, kube: KubeApi, roles: RoleReader, clock: Clock | None = None) -> None:
        self.kube = kube
        self.roles = roles
        self.clock = clock or Clock()

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def pod(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        """The pod if it is still the same incarnation, else None."""
        pod = await self.call(lambda: unless(GONE, lambda: self.kube.get(PODS, namespace, name)))
        return pod if pod is not None and pod["metadata"]["uid"] == uid else None

    async def role_of(self, pod: Mapping[str, Any]) -> RoleRead | None:
        name = (pod["metadata"].get("labels") or {}).get(c.ROLE_LABEL)
        if not name:
            return None
        return await self.call(lambda: self.roles.read(pod["metadata"]["namespace"], name))

    async def patch(
        self, pod: Mapping[str, Any], patch: dict[str, Any], *, merge: bool = True, as_read: bool = False
    ) -> bool:
        """Patches this incarnation of the pod; False when it is gone or replaced, or, `as_read`,
        when it changed at all since `pod` was read."""
        meta = pod["metadata"]
        preconditions = {
            "uid": meta["uid"],
            **({"resourceVersion": meta["resourceVersion"]} if as_read else {}),
        }
        patch = {**patch, "metadata": {**patch.get("metadata", {}), **preconditions}}
        content_type = MERGE_PATCH if merge else STRATEGIC_MERGE_PATCH
        done = await self.call(
            lambda: unless(
                GONE_OR_REPLACED,
                lambda: self.kube.patch(
                    PODS, meta["namespace"], meta["name"], patch, content_type=content_type
                ),
            )
        )
        return done is not None

    async def patch_while(
        self, pod: Mapping[str, Any], still: PodCheck, make_patch: PodPatch
    ) -> dict[str, Any] | None:
        """Patches the pod as last read, and only while `still(pod)` holds: the patch carries the
        resourceVersion, so a change in between (the user withdrew the request, a node came back)
        answers 409 and the decision is made again on a fresh read. Returns the patched pod, or None
        when the pod is gone or `still` no longer holds."""
        meta = pod["metadata"]
        current: Mapping[str, Any] | None = pod
        for _ in range(MAX_CONFLICTS):
            if current is None or not still(current):
                return None
            change = make_patch(current)
            version = current["metadata"]["resourceVersion"]
            change["metadata"] = {
                **change.get("metadata", {}),
                "uid": meta["uid"],
                "resourceVersion": version,
            }
            patched = await self._patch_exactly(meta["namespace"], meta["name"], change)
            if patched is not None:
                return patched
            current = await self.pod(meta["namespace"], meta["name"], meta["uid"])
        return None

    async def _patch_exactly(
        self, namespace: str, name: str, change: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self.call(
            lambda: unless(
                GONE_OR_REPLACED,
                lambda: self.kube.patch(PODS, namespace, name, change, content_type=MERGE_PATCH),
            )
        )

    async def delete(self, pod: Mapping[str, Any]) -> bool:
        """Deletes the pod as it was read: False when it changed since (a deletion by someone else
        included, which would otherwise be answered 200 again and counted twice), or is gone."""
        meta = pod["metadata"]
        done = await self.call(
            lambda: unless(
                GONE_OR_REPLACED,
                lambda: self.kube.delete(
                    PODS, meta["namespace"], meta["name"], meta["uid"], meta.get("resourceVersion", "")
                ),
            )
        )
        return done is not None

    async def label_rotation(self, pod: Mapping[str, Any], value: str, still: PodCheck | None = None) -> bool:
        """Sets IN_ROTATION_LABEL (with the time, for the status's `since`); False when gone, or when
        `still` (if given) no longer holds for the pod as it is when the label is set."""
        if (pod["metadata"].get("labels") or {}).get(c.IN_ROTATION_LABEL) == value:
            return True
        changed = {c.ROTATION_CHANGED_ANNOTATION: format_time(self.clock.now())}
        patch = {"metadata": {"labels": {c.IN_ROTATION_LABEL: value}, "annotations": changed}}
        if still is None:
            return await self.patch(pod, patch)
        return await self.patch_while(pod, still, lambda _: {"metadata": dict(patch["metadata"])}) is not None

    async def wait_drained(self, namespace: str, service: str, pod: Mapping[str, Any]) -> bool:
        """Until the pod's IP is no ready endpoint of the input Service; bounded, so a stuck
        EndpointSlice controller cannot hold a request forever."""
        pod_ip = (pod.get("status") or {}).get("podIP")
        if not pod_ip:
            return True
        deadline = self.clock.now().timestamp() + DRAIN_TIMEOUT_S
        while self.clock.now().timestamp() < deadline:
            slices = await self.call(
                lambda: self.kube.list(ENDPOINT_SLICES, namespace, f"kubernetes.io/service-name={service}")
            )
            if not any(_ready_endpoint(s, pod_ip) for s in slices):
                return True
            await self.clock.sleep(POLL_S)
        return False

    async def pool_ready(self, namespace: str, role: VMRole) -> bool:
        """The Deployment's own instances alone fill the role's count in rotation."""
        selector = f"{c.ROLE_LABEL}={role.name},{c.IN_POOL_LABEL}=true"
        pods = await self.call(lambda: self.kube.list(PODS, namespace, selector))
        return sum(1 for pod in pods if in_rotation(pod)) >= role.spec.instances


def _ready_endpoint(endpoint_slice: Mapping[str, Any], ip: str) -> bool:
    return any(
        ip in (endpoint.get("addresses") or []) and (endpoint.get("conditions") or {}).get("ready")
        for endpoint in endpoint_slice.get("endpoints") or []
    )
