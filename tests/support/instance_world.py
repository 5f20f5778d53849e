"""A role `web` with its Deployment in the in-memory API, a fake clock, and the Events the operator
posted: where the instance operations and node maintenance are tested, the test playing the
ReplicaSet and the kubelet."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.cluster_state import instance_pod, observe, role_object, stored_role
from tests.support.fake_clock import FakeClock
from tests.support.fake_kube import FakeKube
from vmrole_operator.control.instance_api import InstanceApi
from vmrole_operator.control.role_reader import RoleReader
from vmrole_operator.control.role_reconciler import RoleReconciler
from vmrole_operator.control.role_workers import Work
from vmrole_operator.kube.api import ENDPOINT_SLICES, MERGE_PATCH, PODS, VMROLES

DIGEST_IMAGE = "localhost/vmrole-test/web@sha256:" + "b" * 64
Event = tuple[str, str, str]


class World:
    """The API, a clock, the role `web` with its Deployment, and what the operator posted."""

    def __init__(self, instances: int = 2, **spec: Any) -> None:
        self.kube = FakeKube()
        self.clock = FakeClock(self.kube.now)
        self.events: list[Event] = []
        self.kube.put(VMROLES, role_object(image=DIGEST_IMAGE, instances=instances, **spec))
        reconciler = RoleReconciler(self.kube, RoleReader(self.kube), "pause:test", self.post, self.clock)
        reconciler.run("ns", "web", Work.RECONCILE, observe(self.kube, "ns", "web"))
        self.events.clear()
        self.api = InstanceApi(self.kube, RoleReader(self.kube), self.clock)

    def post(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason))

    def pod(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return instance_pod(self.kube, stored_role(self.kube), name, **kwargs)

    def annotate(self, name: str, **annotations: str) -> dict[str, Any]:
        return self.kube.patch(
            PODS, "ns", name, {"metadata": {"annotations": annotations}}, content_type=MERGE_PATCH
        )

    def serving(self, *ips: str) -> dict[str, Any]:
        """The input Service `web`'s EndpointSlice with `ips` ready; put it again to change them."""
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        }
        self.kube.put(ENDPOINT_SLICES, endpoint_slice)
        return endpoint_slice

    def stored(self, name: str) -> dict[str, Any] | None:
        return self.kube.stored(PODS, "ns", name)

    def reasons(self, name: str) -> list[str]:
        return [reason for who, _, reason in self.events if who == name]

    def run(self, steps: Callable[[str, str, str], Awaitable[None]], pod: dict[str, Any]) -> None:
        asyncio.run(steps("ns", pod["metadata"]["name"], pod["metadata"]["uid"]))


def replacement_arrives(world: World, after_sleeps: int = 1, name: str = "web-c") -> None:
    """The ReplicaSet starts a replacement once the victim left the pool; it is ready a while later."""

    def hook(sleeps: int) -> None:
        if sleeps == after_sleeps and world.stored(name) is None:
            world.pod(name, ip="10.244.0.30")

    world.clock.hooks.append(hook)
