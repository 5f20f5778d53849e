"""Reimage and reboot of one instance, each a short-lived asyncio task driven by pod events.

Every step is idempotent and re-derived from the API objects, so a task killed with the operator is
simply started again by the pod's next event (kopf lists every pod on start) and finishes the same
request exactly once: the request annotation lives on the pod, a reimage ends with a delete carrying
the pod's UID as precondition, and a reboot records its token in the same patch that restarts the
container.

Reimage, surge first: the victim leaves the Deployment's pool (IN_POOL_LABEL removed) so the
ReplicaSet starts its replacement at once while the victim still serves; once the replacement is in
rotation (or a deadline passes, when the cluster has no room), the victim leaves rotation
(IN_ROTATION_LABEL), its endpoint drains from the input Service's EndpointSlices, and it is deleted.

Busy: IN_ROTATION_LABEL follows the busy annotation, unless a reimage or reboot holds it. The label's
value says who took the instance out ("busy", "reimage", "reboot"); only "true" is selected.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from . import constants as c
from . import metrics
from .instance_requests import (
    main_restart_count,
    pending_reboot,
    pending_reimage,
    rebooted_image,
    rotation_wanted,
)
from .instance_state import format_time, in_rotation, parse_time
from .kube_api import ENDPOINT_SLICES, MERGE_PATCH, PODS, VMROLES, KubeApi
from .models import VMRole, parse_role

logger = logging.getLogger(__name__)

POLL_S = 0.25
DRAIN_TIMEOUT_S = 30.0
MAX_SURGE_WAIT_S = 300.0
REIMAGE_STARTED_ANNOTATION = c.REIMAGE_STARTED_ANNOTATION
IN_ROTATION = "true"
OUT_FOR_BUSY = "busy"
OUT_FOR_REIMAGE = "reimage"
OUT_FOR_REBOOT = "reboot"

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _rotation_out_of_step(pod: Mapping[str, Any]) -> bool:
    """The rotation label disagrees with what the instance's requests want."""
    wanted = rotation_wanted(pod)
    if wanted is None:
        return False
    label = (pod["metadata"].get("labels") or {}).get(c.IN_ROTATION_LABEL)
    return (label == IN_ROTATION) != wanted


class InstanceOperations:
    def __init__(self, kube: KubeApi, post_event: EventPoster) -> None:
        self.kube = kube
        self.post_event = post_event
        self._tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    def observe(self, pod: Mapping[str, Any]) -> None:
        """Starts the task a pod's pending request needs, unless one already runs for it."""
        meta = pod["metadata"]
        operations: tuple[tuple[Literal["reimage", "reboot", "rotation"], Any, Any], ...] = (
            ("reimage", pending_reimage, self._reimage_steps),
            ("reboot", pending_reboot, self._reboot_steps),
            ("rotation", _rotation_out_of_step, self._rotation_steps),
        )
        for verb, pending, run in operations:
            key = (meta["namespace"], meta["name"], verb)
            if pending(pod) and key not in self._tasks:
                task = asyncio.create_task(
                    self._guarded(verb, run, meta["namespace"], meta["name"], meta["uid"])
                )
                self._tasks[key] = task
                task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        for key, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[key]

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()

    @staticmethod
    async def _guarded(
        verb: Literal["reimage", "reboot", "rotation"],
        steps: Callable[[str, str, str], Awaitable[None]],
        namespace: str,
        name: str,
        uid: str,
    ) -> None:
        try:
            await steps(namespace, name, uid)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.count_action(verb, "failed")
            logger.exception("%s of %s/%s failed; its next event retries", verb, namespace, name)

    # ---- API access (blocking client, run in threads) -------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _read_pod(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        """The pod if it is still the same incarnation, else None."""
        try:
            pod: dict[str, Any] = await self._call(self.kube.get, PODS, namespace, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return pod if pod["metadata"]["uid"] == uid else None

    async def _read_role(
        self, namespace: str, pod: Mapping[str, Any]
    ) -> tuple[dict[str, Any], VMRole] | None:
        name = (pod["metadata"].get("labels") or {}).get(c.ROLE_LABEL)
        if not name:
            return None
        try:
            body = await self._call(self.kube.get, VMROLES, namespace, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        try:
            return body, parse_role(body)
        except ValueError:
            return None

    async def _endpoint_drained(self, namespace: str, role: str, pod_ip: str | None) -> bool:
        if not pod_ip:
            return True
        slices = await self._call(
            self.kube.list, ENDPOINT_SLICES, namespace, f"kubernetes.io/service-name={role}"
        )
        for endpoint_slice in slices:
            for endpoint in endpoint_slice.get("endpoints") or []:
                ready = (endpoint.get("conditions") or {}).get("ready")
                if pod_ip in (endpoint.get("addresses") or []) and ready:
                    return False
        return True

    async def _wait_drained(self, namespace: str, role: str, pod: Mapping[str, Any]) -> bool:
        """Bounded: a stuck EndpointSlice controller must not hold a request forever."""
        pod_ip = (pod.get("status") or {}).get("podIP")
        deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            if await self._endpoint_drained(namespace, role, pod_ip):
                return True
            await asyncio.sleep(POLL_S)
        return False

    async def _label_rotation(self, pod: Mapping[str, Any], value: str) -> None:
        meta = pod["metadata"]
        if (meta.get("labels") or {}).get(c.IN_ROTATION_LABEL) == value:
            return
        # A merge patch carrying the uid fails on any other incarnation of the name.
        patch = {
            "metadata": {
                "uid": meta["uid"],
                "labels": {c.IN_ROTATION_LABEL: value},
                "annotations": {c.ROTATION_CHANGED_ANNOTATION: format_time(_utcnow())},
            }
        }
        await self._call(
            self.kube.patch, PODS, meta["namespace"], meta["name"], patch, content_type=MERGE_PATCH
        )

    # ---- busy, and back in rotation after a reboot ----------------------------------------------

    async def _rotation_steps(self, namespace: str, name: str, uid: str) -> None:
        pod = await self._read_pod(namespace, name, uid)
        if pod is None or not _rotation_out_of_step(pod):
            return
        wanted = rotation_wanted(pod)
        previous = (pod["metadata"].get("labels") or {}).get(c.IN_ROTATION_LABEL)
        try:
            await self._label_rotation(pod, IN_ROTATION if wanted else OUT_FOR_BUSY)
        except ApiException as e:
            if e.status in (404, 409):
                return
            raise
        metrics.count_action("rotation", "succeeded")
        if not wanted:
            self.post_event(pod, "Normal", "InstanceBusy", f"{c.BUSY_ANNOTATION}=true: out of rotation")
        elif previous == OUT_FOR_BUSY:
            self.post_event(pod, "Normal", "InstanceNotBusy", "busy cleared: back in rotation")

    # ---- reimage ----------------------------------------------------------------------------------

    async def _unheld_request(
        self, namespace: str, name: str, uid: str
    ) -> tuple[dict[str, Any], str, dict[str, Any], VMRole] | None:
        """The pod, its reimage token and its role once the role is not paused; None when the
        request went away. A paused role holds the request (a Warning says so) and deletes nothing."""
        held_reported = False
        while True:
            pod = await self._read_pod(namespace, name, uid)
            token = pending_reimage(pod) if pod is not None else None
            if pod is None or token is None:
                return None
            found = await self._read_role(namespace, pod)
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
            await asyncio.sleep(2)

    async def _reimage_steps(self, namespace: str, name: str, uid: str) -> None:
        unheld = await self._unheld_request(namespace, name, uid)
        if unheld is None:
            return
        pod, token, role_body, role = unheld
        labels = pod["metadata"].get("labels") or {}
        annotations = pod["metadata"].get("annotations") or {}
        if labels.get(c.IN_POOL_LABEL) is not None or REIMAGE_STARTED_ANNOTATION not in annotations:
            await self._leave_pool(pod, role_body)
            self.post_event(pod, "Normal", "ReimageStarted", f"reimage {token}: replacement starting first")
            self.post_event(role_body, "Normal", "ReimageStarted", f"reimage {token} of instance {name}")
            refreshed = await self._read_pod(namespace, name, uid)
            if refreshed is None:
                return
            pod = refreshed
        started = parse_time((pod["metadata"].get("annotations") or {}).get(REIMAGE_STARTED_ANNOTATION))
        surge_deadline = (started or _utcnow()) + datetime.timedelta(
            seconds=min(role.spec.autoStartTimeoutSeconds, MAX_SURGE_WAIT_S)
        )

        # Surge first: while the victim serves, wait for the pool to be whole again without it.
        while in_rotation(pod) and _utcnow() < surge_deadline:
            if await self._pool_ready(namespace, role):
                break
            await asyncio.sleep(POLL_S)
            refreshed = await self._read_pod(namespace, name, uid)
            if refreshed is None or pending_reimage(refreshed) is None:
                return
            pod = refreshed

        try:
            await self._label_rotation(pod, OUT_FOR_REIMAGE)
        except ApiException as e:
            if e.status in (404, 409):
                return
            raise
        if not await self._wait_drained(namespace, role.name, pod):
            self.post_event(
                pod,
                "Warning",
                "DrainTimeout",
                f"endpoint still ready after {DRAIN_TIMEOUT_S:.0f}s; deleting anyway",
            )
        try:
            await self._call(self.kube.delete, PODS, namespace, name, uid)
        except ApiException as e:
            if e.status in (404, 409):  # already gone, or the name now belongs to a new pod
                return
            raise
        metrics.count_action("reimage", "succeeded")
        self.post_event(pod, "Normal", "Reimaged", f"reimage {token}: deleted; a fresh instance replaces it")
        self.post_event(role_body, "Normal", "Reimaged", f"reimage {token} of instance {name} done")

    async def _leave_pool(self, pod: Mapping[str, Any], role_body: Mapping[str, Any]) -> None:
        """One patch: out of the ReplicaSet's selector, owned by the role (so deleting the role still
        collects it), and the start time that bounds the surge wait across restarts."""
        meta = pod["metadata"]
        refs = [dict(r) for r in meta.get("ownerReferences") or []]
        role_uid = role_body["metadata"]["uid"]
        if not any(r.get("uid") == role_uid for r in refs):
            refs.append(
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND,
                    "name": role_body["metadata"]["name"],
                    "uid": role_uid,
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            )
        annotations = meta.get("annotations") or {}
        patch = {
            "metadata": {
                "labels": {c.IN_POOL_LABEL: None},
                "ownerReferences": refs,
                "annotations": {
                    REIMAGE_STARTED_ANNOTATION: annotations.get(REIMAGE_STARTED_ANNOTATION)
                    or format_time(_utcnow())
                },
                "uid": meta["uid"],  # a merge patch with a uid fails on any other incarnation
            }
        }
        await self._call(
            self.kube.patch, PODS, meta["namespace"], meta["name"], patch, content_type=MERGE_PATCH
        )

    async def _pool_ready(self, namespace: str, role: VMRole) -> bool:
        pods = await self._call(
            self.kube.list, PODS, namespace, f"{c.ROLE_LABEL}={role.name},{c.IN_POOL_LABEL}=true"
        )
        return sum(1 for pod in pods if in_rotation(pod)) >= role.spec.instances

    # ---- reboot -----------------------------------------------------------------------------------

    async def _reboot_steps(self, namespace: str, name: str, uid: str) -> None:
        pod = await self._read_pod(namespace, name, uid)
        token = pending_reboot(pod) if pod is not None else None
        if pod is None or token is None:
            return
        found = await self._read_role(namespace, pod)
        if found is None:
            return
        role_body, role = found
        main = next((x for x in pod["spec"]["containers"] if x["name"] == c.MAIN_CONTAINER), None)
        if main is None or "@" not in main["image"]:
            self.post_event(
                pod, "Warning", "RebootRefused", f"reboot {token}: the instance has no pinned image"
            )
            return
        try:
            await self._label_rotation(pod, OUT_FOR_REBOOT)
        except ApiException as e:
            if e.status in (404, 409):
                return
            raise
        if not await self._wait_drained(namespace, role.name, pod):
            self.post_event(
                pod,
                "Warning",
                "DrainTimeout",
                f"endpoint still ready after {DRAIN_TIMEOUT_S:.0f}s; restarting anyway",
            )
        # The kubelet restarts a container whose image reference changed; this one names the same
        # digest, so the same golden image, pod, IP and ephemeral disk come back and setup does not
        # re-run. The token and the restart count go in the same patch: exactly once. The instance
        # goes back into rotation once the kubelet has restarted it (`rotation_wanted`), and its
        # checks then hold it out until they pass again.
        patch = {
            "metadata": {
                "uid": uid,
                "annotations": {
                    c.REBOOT_DONE_ANNOTATION: token,
                    c.REBOOT_RESTARTS_ANNOTATION: str(main_restart_count(pod)),
                },
            },
            "spec": {"containers": [{"name": c.MAIN_CONTAINER, "image": rebooted_image(main["image"])}]},
        }
        try:
            await self._call(self.kube.patch, PODS, namespace, name, patch)
        except ApiException as e:
            if e.status in (404, 409):
                return
            raise
        metrics.count_action("reboot", "succeeded")
        self.post_event(pod, "Normal", "Rebooted", f"reboot {token}: containers restarting, disk kept")
        self.post_event(role_body, "Normal", "Rebooted", f"reboot {token} of instance {name}")
