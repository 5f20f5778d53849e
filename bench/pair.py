"""A VMRole and its plain equivalent side by side in one namespace, with the verbs the benchmarks time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.rest import ApiException

from .common import (
    REIMAGE_ANNOTATION,
    REPO,
    Endpoint,
    EndpointWatcher,
    Kube,
    kubectl,
    ready_pods,
    wait_for,
    web_digest_image,
)
from .workloads import floor_objects, floor_selector, role_manifest, role_selector

OPERATOR, FLOOR = "operator", "floor"


def operator_handles_reimage() -> bool:
    """Whether the operator's code acts on vmrole.dev/reimage at all (a static look, for messages only)."""
    package = REPO / "operator" / "vmrole_operator"
    return any(
        "REIMAGE_ANNOTATION" in path.read_text()
        for path in package.glob("*.py")
        if path.name != "constants.py"
    )


class Side:
    """One arm: the pods behind one Service, and how to replace one of them."""

    def __init__(
        self, kube: Kube, namespace: str, kind: str, name: str, selector: str, guard: Callable[[], None]
    ) -> None:
        self.kube = kube
        self.guard = guard
        self.namespace = namespace
        self.kind = kind
        self.name = name
        self.selector = selector
        self.endpoints = EndpointWatcher(kube, namespace, name)

    def steady(self, instances: int, timeout: float) -> set[str]:
        """Waits until exactly `instances` pods exist, none terminating, all of them ready endpoints."""
        self.guard()

        def check() -> set[str] | None:
            state = self.endpoints.snapshot()
            ready = ready_pods(state)
            if len(ready) != instances or len(state) != instances:
                return None
            pods = self.kube.pods(self.namespace, self.selector)
            names = {p["metadata"]["name"] for p in pods}
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            return ready if len(pods) == instances == len(live) and names == ready else None

        return wait_for(check, timeout, f"{self.kind} {self.name}: {instances} ready endpoints", interval=0.1)

    def wait_new_ready(self, before: set[str], timeout: float) -> float:
        """Monotonic time at which an endpoint of a pod not in `before` became ready."""

        def new_ready(state: Mapping[str, Endpoint]) -> bool:
            return any(e.ready and pod not in before for pod, e in state.items())

        return self.endpoints.wait(new_ready, timeout, f"a new ready endpoint of {self.name}")

    def replace(self, victim: str, token: str) -> None:
        """The single-instance verb: the reimage annotation (operator) or a plain pod delete (floor).

        The floor's delete is the request `kubectl delete pod` makes (default grace period), sent from
        this process so neither arm pays for starting a kubectl process.
        """
        if self.kind == OPERATOR:
            self.kube.core.patch_namespaced_pod(
                victim, self.namespace, {"metadata": {"annotations": {REIMAGE_ANNOTATION: token}}}
            )
        else:
            self.kube.core.delete_namespaced_pod(victim, self.namespace)

    def replace_all(self, token: str) -> None:
        """Reimage-all (role annotation) or `kubectl rollout restart` on the plain Deployment."""
        if self.kind == OPERATOR:
            self.kube.patch_role(
                self.namespace, self.name, {"metadata": {"annotations": {REIMAGE_ANNOTATION: token}}}
            )
        else:
            kubectl("rollout", "restart", f"deployment/{self.name}", "-n", self.namespace)

    def pod_exists(self, name: str) -> tuple[bool, bool]:
        """(exists, terminating) of a pod."""
        try:
            pod = self.kube.core.read_namespaced_pod(name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return False, False
            raise
        return True, pod.metadata.deletion_timestamp is not None


class Pair:
    """Role `op` and Deployment + Service `floor` with the same pod spec and image, in `namespace`."""

    def __init__(
        self, kube: Kube, namespace: str, instances: int = 3, guard: Callable[[], None] = lambda: None
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.instances = instances
        self.role = role_manifest("op", instances=instances)
        self.operator = Side(kube, namespace, OPERATOR, "op", role_selector("op"), guard)
        self.floor = Side(kube, namespace, FLOOR, "floor", floor_selector("floor"), guard)
        self.image: str | None = None

    def __enter__(self) -> Pair:
        self.operator.endpoints.__enter__()
        self.floor.endpoints.__enter__()
        # The floor runs exactly what the role's instances run: the tag's digest, which the operator pins.
        self.image = web_digest_image()
        self.kube.create_role(self.namespace, self.role)
        deployment, service = floor_objects(self.role, "floor", self.image)
        self.kube.apps.create_namespaced_deployment(self.namespace, deployment)
        self.kube.core.create_namespaced_service(self.namespace, service)
        self.operator.steady(self.instances, 180)
        self.floor.steady(self.instances, 180)
        pinned = self.kube.get_role(self.namespace, "op")["status"]["image"]
        if pinned != self.image:
            raise RuntimeError(f"the operator pinned {pinned}, the floor runs {self.image}")
        return self

    def __exit__(self, *_: object) -> None:
        self.operator.endpoints.__exit__()
        self.floor.endpoints.__exit__()

    def sides(self) -> tuple[Side, Side]:
        return self.operator, self.floor

    def cluster_ip(self, side: Side) -> str:
        return str(self.kube.core.read_namespaced_service(side.name, self.namespace).spec.cluster_ip)

    def role_status(self) -> dict[str, Any]:
        return dict(self.kube.get_role(self.namespace, "op").get("status") or {})


def wait_gone(side: Side, victim: str, timeout: float) -> None:
    wait_for(lambda: not side.pod_exists(victim)[0], timeout, f"pod {victim} gone", interval=0.2)


def cleanup_annotation(side: Side, victim: str) -> None:
    with contextlib.suppress(ApiException):
        side.kube.core.patch_namespaced_pod(
            victim, side.namespace, {"metadata": {"annotations": {REIMAGE_ANNOTATION: None}}}
        )


def now() -> float:
    return time.monotonic()
