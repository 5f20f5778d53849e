"""Which task a pod event starts: reimage, reboot, a rotation change, or the return of a withdrawn
reimage's victim to the pool; one task per pod and kind.

Tasks are short-lived and driven by pod events. A task killed with the operator is simply started
again by the pod's next event (kopf lists every pod on start), and finishes the same request exactly
once, because each of its steps is re-derived from the pod and guarded by the pod's UID.

Two things keep a request from being left pending with nobody working on it:
- an event that arrives while the pod's task of that kind runs is not dropped: the task runs its
  steps once more when it ends, from a fresh read (requests issued back to back);
- a control plane away for a moment (the API server or etcd restarting, the connection cut) is
  waited out here, with a backoff, rather than left to a pod event that may never come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from .. import metrics
from ..clock import Clock
from ..kube.api import KubeApi
from ..kube.errors import describe, transient
from ..kube.events import EventPoster
from ..state.requests import pending_reboot, pending_reimage, reimage_withdrawn
from .instance_api import InstanceApi
from .keyed_tasks import KeyedTasks
from .reboot import RebootSteps
from .reimage import ReimageSteps, WithdrawnReimageSteps
from .role_reader import RoleReader
from .role_workers import retry_delay
from .rotation import RotationSteps, rotation_out_of_step

logger = logging.getLogger(__name__)

Verb = Literal["reimage", "reboot", "rotation", "withdrawn"]
Steps = Callable[[str, str, str], Awaitable[None]]
Key = tuple[str, str, Verb]
# A request waits for the control plane at most this long between two tries.
RETRY_MAX_S = 8.0


class InstanceOperations:
    def __init__(
        self, kube: KubeApi, roles: RoleReader, post_event: EventPoster, clock: Clock | None = None
    ) -> None:
        api = InstanceApi(kube, roles, clock)
        self._clock = api.clock
        self._operations: tuple[tuple[Verb, Callable[[Mapping[str, Any]], object], Steps], ...] = (
            ("reimage", pending_reimage, ReimageSteps(api, post_event).run),
            ("reboot", pending_reboot, RebootSteps(api, post_event).run),
            ("rotation", rotation_out_of_step, RotationSteps(api, post_event).run),
            ("withdrawn", reimage_withdrawn, WithdrawnReimageSteps(api, post_event).run),
        )
        self._tasks: KeyedTasks[Key] = KeyedTasks()
        self._again: set[Key] = set()

    def observe(self, pod: Mapping[str, Any]) -> None:
        """Starts the task a pod's pending request needs; if one runs already, it goes once more."""
        meta = pod["metadata"]
        for verb, pending, steps in self._operations:
            key = (meta["namespace"], meta["name"], verb)
            if not pending(pod):
                continue
            if self._tasks.running(key):
                self._again.add(key)
            else:
                self._tasks.start(key, self._guarded(key, steps, meta["uid"]))

    async def close(self) -> None:
        await self._tasks.close()
        self._again.clear()

    async def _guarded(self, key: Key, steps: Steps, uid: str) -> None:
        namespace, name, verb = key
        failures = 0
        while True:
            self._again.discard(key)
            try:
                await steps(namespace, name, uid)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                metrics.count_action(verb, "failed")
                if not transient(e):
                    logger.exception("%s of %s/%s failed; its next event retries", verb, namespace, name)
                    return
                failures += 1
                delay = retry_delay(failures, RETRY_MAX_S)
                logger.warning(
                    "%s of %s/%s: %s; retrying in %.0fs", verb, namespace, name, describe(e), delay
                )
                await self._clock.sleep(delay)
                continue
            failures = 0
            if key not in self._again:
                return
