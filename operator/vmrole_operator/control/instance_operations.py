"""Which task a pod event starts: reimage, reboot, or a rotation change; one task per pod and kind.

Tasks are short-lived and driven by pod events. A task killed with the operator is simply started
again by the pod's next event (kopf lists every pod on start), and finishes the same request exactly
once, because each of its steps is re-derived from the pod and guarded by the pod's UID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from .. import metrics
from ..clock import Clock
from ..kube.api import KubeApi
from ..kube.events import EventPoster
from ..state.requests import pending_reboot, pending_reimage
from .instance_api import InstanceApi
from .keyed_tasks import KeyedTasks
from .reboot import RebootSteps
from .reimage import ReimageSteps
from .role_reader import RoleReader
from .rotation import RotationSteps, rotation_out_of_step

logger = logging.getLogger(__name__)

Verb = Literal["reimage", "reboot", "rotation"]
Steps = Callable[[str, str, str], Awaitable[None]]


class InstanceOperations:
    def __init__(
        self, kube: KubeApi, roles: RoleReader, post_event: EventPoster, clock: Clock | None = None
    ) -> None:
        api = InstanceApi(kube, roles, clock)
        self._operations: tuple[tuple[Verb, Callable[[Mapping[str, Any]], object], Steps], ...] = (
            ("reimage", pending_reimage, ReimageSteps(api, post_event).run),
            ("reboot", pending_reboot, RebootSteps(api, post_event).run),
            ("rotation", rotation_out_of_step, RotationSteps(api, post_event).run),
        )
        self._tasks: KeyedTasks[tuple[str, str, Verb]] = KeyedTasks()

    def observe(self, pod: Mapping[str, Any]) -> None:
        """Starts the task a pod's pending request needs, unless one already runs for it."""
        meta = pod["metadata"]
        for verb, pending, steps in self._operations:
            key = (meta["namespace"], meta["name"], verb)
            if pending(pod) and not self._tasks.running(key):
                self._tasks.start(key, _guarded(verb, steps, meta["namespace"], meta["name"], meta["uid"]))

    async def close(self) -> None:
        await self._tasks.close()


async def _guarded(verb: Verb, steps: Steps, namespace: str, name: str, uid: str) -> None:
    try:
        await steps(namespace, name, uid)
    except asyncio.CancelledError:
        raise
    except Exception:
        metrics.count_action(verb, "failed")
        logger.exception("%s of %s/%s failed; its next event retries", verb, namespace, name)
