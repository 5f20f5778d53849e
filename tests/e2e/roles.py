"""VMRole manifests and waits shared by the operator e2e tests."""

from __future__ import annotations

import copy
from typing import Any

from .kube import WEB_IMAGE, Kube, http_get

GROUP, VERSION, PLURAL = "vmrole.dev", "v1alpha1", "vmroles"
ANSWER = "<unattend><settings pass='specialize'/></unattend>"


def role_manifest(name: str = "web", **spec: Any) -> dict[str, Any]:
    """The example role of examples/web.yaml, smaller and faster; keyword arguments replace spec fields."""
    base: dict[str, Any] = {
        "image": f"{WEB_IMAGE}:1",
        "instances": 1,
        "ephemeralDisk": {"mountPaths": ["/scratch", "/tmp"], "sizeLimit": "64Mi"},
        "setup": {
            "command": ["/bin/sh", "-c", "cp /etc/vmrole/answer/unattend.xml /scratch/ && echo setup done"],
            "answerFile": {"data": {"unattend.xml": ANSWER}},
        },
        "autoStart": [
            {"name": "http", "tcpSocket": {"port": 8080}},
            {"name": "health", "httpGet": {"port": 8080, "path": "/healthz"}},
        ],
        "endpoints": {
            "input": [{"name": "http", "port": 80, "targetPort": 8080}],
            "internal": [{"name": "peer", "port": 7000}],
        },
    }
    base.update(copy.deepcopy(spec))
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VMRole", "metadata": {"name": name}, "spec": base}


def create_role(kube: Kube, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest))


def get_role(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def patch_role(kube: Kube, namespace: str, name: str, patch: dict[str, Any]) -> None:
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def condition(role: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (role.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return None


def wait_available(kube: Kube, namespace: str, name: str, ready: int, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        role = get_role(kube, namespace, name)
        status = role.get("status") or {}
        available = condition(role, "Available")
        if status.get("readyReplicas") == ready and available and available["status"] == "True":
            return role
        return None

    return kube.wait_for(check, timeout, f"role {name} with {ready} ready instances")


def observed_after(kube: Kube, namespace: str, name: str, timeout: float = 60) -> None:
    """Changes a field no pod sees (autoStartTimeoutSeconds) and waits until the operator reports the
    generation it made: a positive signal that it has handled everything sent before."""
    timeout_s = int(get_role(kube, namespace, name)["spec"].get("autoStartTimeoutSeconds") or 300)
    patch_role(kube, namespace, name, {"spec": {"autoStartTimeoutSeconds": timeout_s + 1}})
    generation = get_role(kube, namespace, name)["metadata"]["generation"]
    kube.wait_for(
        lambda: (
            (get_role(kube, namespace, name).get("status") or {}).get("observedGeneration", 0) >= generation
        ),
        timeout,
        f"the operator to observe generation {generation} of {name}",
    )


def instances(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = kube.pods(namespace, f"vmrole.dev/role={name}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready_role(kube: Kube, namespace: str, count: int, **spec: Any) -> tuple[dict[str, Any], str]:
    """The role `web` created, every instance in rotation, and its ClusterIP answering; the role and
    that IP."""
    create_role(kube, namespace, role_manifest(instances=count, **spec))
    role = wait_available(kube, namespace, "web", ready=count)
    kube.wait_for(
        lambda: sum(kube.endpoint_states(namespace, "web").values()) == count, 30, "all endpoints ready"
    )
    cluster_ip = kube.core.read_namespaced_service("web", namespace).spec.cluster_ip
    # kube-proxy programs a new Service a moment after its EndpointSlice is ready; load starts after.
    kube.wait_for(
        lambda: all(http_get(f"http://{cluster_ip}/version") for _ in range(5)), 30, "the ClusterIP answering"
    )
    return role, cluster_ip


def settled(kube: Kube, namespace: str, count: int, gone: set[str]) -> bool:
    """`count` instances, every one ready, in rotation and counted in the status, and none of the
    pods with the UIDs `gone` left."""
    pods = instances(kube, namespace, "web")
    return (
        len(pods) == count
        and not {p["metadata"]["uid"] for p in kube.pods(namespace, "vmrole.dev/role=web")} & gone
        and all(kube.pod_ready(namespace, p["metadata"]["name"]) for p in pods)
        and (get_role(kube, namespace, "web").get("status") or {}).get("readyReplicas") == count
    )
