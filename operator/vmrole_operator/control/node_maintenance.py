"""Node maintenance, surge first: the instances of a cordoned node are reimaged onto other nodes.

`kubectl drain` cordons a node, then evicts its pods one by one. The role's PodDisruptionBudget
(specs/disruption_budget.py) refuses each eviction until the role has one healthy instance more
than it asks for; the operator makes that one. When a node is cordoned, every instance on it gets a
reimage request (token `node-drain.<time>`), and the ordinary reimage replaces it surge first:
the replacement starts on another node while the victim still serves, then the victim drains and
goes. Uncordoning withdraws the requests of instances that still serve, so nothing waits for a
drain that is no longer coming.

Both writes carry the pod's resourceVersion, and a reimage sets no step of its own on a pod whose
request was withdrawn (control/reimage.py), so the two never cross: an instance is either replaced
once, or left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from .. import constants as c
from ..clock import Clock
from ..kube.events import EventPoster
from ..state.requests import is_node_drain_token, is_terminating, node_drain_token, pending_reimage
from .instance_api import InstanceApi
from .keyed_tasks import KeyedTasks
from .reimage import back_to_pool

logger = logging.getLogger(__name__)

# The instances on a node, as `trim_pod_for_node` keeps them (kopf's by-node index).
PodsOnNode = Callable[[str], list[Mapping[str, Any]]]


def node_cordoned(node: Mapping[str, Any]) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def needs_replacement(pod: Mapping[str, Any]) -> bool:
    """A live instance of the Deployment's pool with no reimage under way."""
    return (
        not is_terminating(pod)
        and _labels(pod).get(c.IN_POOL_LABEL) == "true"
        and c.REIMAGE_ANNOTATION not in ((pod.get("metadata") or {}).get("annotations") or {})
    )


def withdrawable(pod: Mapping[str, Any]) -> bool:
    """A node drain's replacement that has not started to drain the instance: it still serves."""
    return (
        is_node_drain_token(pending_reimage(pod)) and _labels(pod).get(c.IN_ROTATION_LABEL) == c.IN_ROTATION
    )


def _request(token: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    return lambda _: {"metadata": {"annotations": {c.REIMAGE_ANNOTATION: token}}}


def _node_of(pod: Mapping[str, Any]) -> str | None:
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node else None


class NodeMaintenance:
    """Follows nodes' `spec.unschedulable`, and the instances on them."""

    def __init__(
        self, api: InstanceApi, post_event: EventPoster, pods_on_node: PodsOnNode, clock: Clock | None = None
    ) -> None:
        self.api = api
        self.post_event = post_event
        self.pods_on_node = pods_on_node
        self.clock = clock or Clock()
        self.cordoned: dict[str, bool] = {}  # every node seen, and whether it is cordoned
        self._tasks: KeyedTasks[tuple[str, str]] = KeyedTasks()

    def node_changed(self, node: Mapping[str, Any], deleted: bool = False) -> None:
        name = str(node["metadata"]["name"])
        if deleted:
            self.cordoned.pop(name, None)  # its pods are collected with it; nothing to replace
            return
        cordoned = node_cordoned(node)
        if self.cordoned.get(name) == cordoned:
            return
        self.cordoned[name] = cordoned
        # Seen for the first time (an operator start) or changed: look at every instance on it.
        for pod in self.pods_on_node(name):
            self._consider(pod, name, cordoned)

    def pod_changed(self, pod: Mapping[str, Any]) -> None:
        """A pod seen on a node whose state is known: an instance that came after the node's change."""
        node = _node_of(pod)
        cordoned = self.cordoned.get(node) if node is not None else None
        if node is not None and cordoned is not None:
            self._consider(pod, node, cordoned)
        # else the node's own event looks at its pods when it comes

    def _consider(self, pod: Mapping[str, Any], node: str, cordoned: bool) -> None:
        if (cordoned and needs_replacement(pod)) or (not cordoned and withdrawable(pod)):
            meta = pod["metadata"]
            self._start(meta["namespace"], meta["name"], meta["uid"], node, cordoned)

    def _start(self, namespace: str, name: str, uid: str, node: str, cordoned: bool) -> None:
        work = (
            self._replace(namespace, name, uid, node)
            if cordoned
            else self._withdraw(namespace, name, uid, node)
        )
        self._tasks.start((namespace, name), _logged(work, namespace, name))

    async def _replace(self, namespace: str, name: str, uid: str, node: str) -> None:
        pod = await self.api.pod(namespace, name, uid)
        if pod is None or _node_of(pod) != node or not needs_replacement(pod):
            return
        token = node_drain_token(self.clock.now().strftime("%Y%m%dT%H%M%SZ"))

        def still(current: Mapping[str, Any]) -> bool:
            return self.cordoned.get(node) is True and needs_replacement(current)

        if await self.api.patch_while(pod, still, _request(token)) is None:
            return
        message = f"node {node} is cordoned: replacing the instance on another node first (reimage {token})"
        self.post_event(pod, "Normal", "NodeCordoned", message)
        found = await self.api.role_of(pod)
        if found is not None:
            role_body, _ = found
            self.post_event(role_body, "Normal", "NodeCordoned", f"pod {name}: {message}")

    async def _withdraw(self, namespace: str, name: str, uid: str, node: str) -> None:
        pod = await self.api.pod(namespace, name, uid)
        if pod is None or not withdrawable(pod):
            return
        token = pending_reimage(pod)

        def still(current: Mapping[str, Any]) -> bool:
            return self.cordoned.get(node) is False and withdrawable(current)

        if await self.api.patch_while(pod, still, back_to_pool) is None:
            return
        message = f"node {node} is schedulable again: reimage {token} withdrawn, the instance stays"
        self.post_event(pod, "Normal", "NodeUncordoned", message)

    async def join(self) -> None:
        await self._tasks.join()

    async def close(self) -> None:
        await self._tasks.close()


async def _logged(work: Coroutine[Any, Any, None], namespace: str, name: str) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("node maintenance of %s/%s failed; the pod's next event retries", namespace, name)
