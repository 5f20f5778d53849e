"""Reboot one instance: the same pod, IP and ephemeral disk; its containers restart, setup does not.

The API has no "restart a container" call. The kubelet restarts a container whose image reference
changed, so, once the instance is out of rotation and drained, one patch swaps the main container's
image for an equivalent reference to the very same digest (`repo@sha256:D` <-> `repo:vmrole-reboot@
sha256:D`; containerd resolves a reference with a digest by the digest alone) and records the token
with the restart count. The instance goes back into rotation once the kubelet has restarted it
(`rotation_wanted`), and its auto-start checks then hold it out until they pass again.
"""

from __future__ import annotations

from typing import Any

from .. import constants as c
from .. import metrics
from ..kube.events import EventPoster
from ..state.names import name_of
from ..state.requests import main_restart_count, pending_reboot, rebooted_image
from .instance_api import InstanceApi
from .rotation import leave_rotation_and_drain


class RebootSteps:
    def __init__(self, api: InstanceApi, post_event: EventPoster) -> None:
        self.api = api
        self.post_event = post_event

    async def run(self, namespace: str, name: str, uid: str) -> None:
        pod = await self.api.pod(namespace, name, uid)
        token = pending_reboot(pod) if pod is not None else None
        if pod is None or token is None:
            return
        found = await self.api.role_of(pod)
        if found is None:
            return
        role_body, role = found
        main = next((x for x in pod["spec"]["containers"] if x["name"] == c.MAIN_CONTAINER), None)
        if main is None or "@" not in main["image"]:
            self.post_event(
                pod, "Warning", "RebootRefused", f"reboot {token}: the instance has no pinned image"
            )
            return
        if not await leave_rotation_and_drain(
            self.api, self.post_event, pod, c.OUT_FOR_REBOOT, role.name, "restarting"
        ):
            return
        restarted = await self._restart(namespace, name, uid)
        if restarted is None:
            return
        pod, token = restarted
        metrics.count_action("reboot", "succeeded")
        self.post_event(pod, "Normal", "Rebooted", f"reboot {token}: containers restarting, disk kept")
        self.post_event(
            role_body, "Normal", "Rebooted", f"reboot {token} of instance {name_of(pod)} (pod {name})"
        )

    async def _restart(self, namespace: str, name: str, uid: str) -> tuple[dict[str, Any], str] | None:
        """The restart itself, on the pod as just read: a reimage asked for during the drain wins
        (None), and one asked for between that read and the patch makes the patch fail (409) and
        is then seen on the next read. The token and the restart count go in the same patch as the
        restart: exactly once."""
        while True:
            pod = await self.api.pod(namespace, name, uid)
            token = pending_reboot(pod) if pod is not None else None
            if pod is None or token is None:
                return None
            main = next(x for x in pod["spec"]["containers"] if x["name"] == c.MAIN_CONTAINER)
            restart = {
                "metadata": {
                    "annotations": {
                        c.REBOOT_DONE_ANNOTATION: token,
                        c.REBOOT_RESTARTS_ANNOTATION: str(main_restart_count(pod)),
                    },
                },
                "spec": {"containers": [{"name": c.MAIN_CONTAINER, "image": rebooted_image(main["image"])}]},
            }
            if await self.api.patch(pod, restart, merge=False, as_read=True):
                return pod, token
