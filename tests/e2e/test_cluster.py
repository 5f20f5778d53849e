"""The test cluster itself is real: pods, kubelet, emptyDir, kube-proxy, EndpointSlices, GC, PSA."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from .conftest import kubectl
from .kube import Kube, http_get, restricted_container, restricted_pod_spec


def _pod(name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def _web_with_disk(name: str = "web") -> dict[str, Any]:
    container = restricted_container(
        name,
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        volumeMounts=[{"name": "disk", "mountPath": "/scratch"}],
    )
    return restricted_pod_spec(container, volumes=[{"name": "disk", "emptyDir": {"sizeLimit": "64Mi"}}])


def test_pod_from_test_image_is_ready_with_logs_and_exec(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_pod(namespace, _pod("web", _web_with_disk()))
    kube.wait_for(lambda: kube.pod_ready(namespace, "web"), 90, "pod web Ready")

    assert kubectl("exec", "-n", namespace, "web", "--", "cat", "/www/version") == "1"
    assert "serving /www on port 8080" in kubectl("logs", "-n", namespace, "web")
    status = kube.pod(namespace, "web")["status"]["containerStatuses"][0]
    assert status["imageID"].startswith("localhost/vmrole-test/web@sha256:")


def test_image_resolves_by_digest_as_after_a_registry_pull(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_pod(namespace, _pod("by-tag", _web_with_disk("by-tag")))
    kube.wait_for(lambda: kube.pod_ready(namespace, "by-tag"), 90, "pod by-tag Ready")
    image_id = kube.pod(namespace, "by-tag")["status"]["containerStatuses"][0]["imageID"]

    container = restricted_container("by-digest", image=image_id)
    kube.core.create_namespaced_pod(namespace, _pod("by-digest", restricted_pod_spec(container)))
    kube.wait_for(
        lambda: (kube.pod(namespace, "by-digest")["status"].get("containerStatuses") or [{}])[0].get(
            "started"
        ),
        90,
        "pod by-digest started",
    )
    assert kube.pod(namespace, "by-digest")["status"]["containerStatuses"][0]["imageID"] == image_id


def test_empty_dir_survives_container_restart_but_not_pod_replacement(kube: Kube, namespace: str) -> None:
    template = {"metadata": {"labels": {"app": "disk"}}, "spec": _web_with_disk()}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "disk"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "disk"}}, "template": template},
    }
    kube.apps.create_namespaced_deployment(namespace, deployment)
    pod = kube.wait_for(
        lambda: [
            p
            for p in kube.pods(namespace, "app=disk")
            if p["status"].get("podIP") and kube.pod_ready(namespace, p["metadata"]["name"])
        ],
        90,
        "disk pod Ready",
    )[0]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    kubectl("exec", "-n", namespace, name, "--", "sh", "-c", "echo kept > /scratch/marker")

    # Killing PID 1 ends the container; the kubelet restarts it in the same pod.
    # The exec may die with the container it killed (137 on kind): its exit code says nothing.
    kubectl("exec", "-n", namespace, name, "--", "kill", "1", check=False)
    kube.wait_for(
        lambda: kube.pod(namespace, name)["status"]["containerStatuses"][0]["restartCount"] >= 1,
        60,
        "container restart",
    )
    kube.wait_for(lambda: kube.pod_ready(namespace, name), 60, "restarted container Ready")
    assert kubectl("exec", "-n", namespace, name, "--", "cat", "/scratch/marker").strip() == "kept"
    assert kube.pod(namespace, name)["metadata"]["uid"] == uid

    kube.core.delete_namespaced_pod(name, namespace)
    new = kube.wait_for(
        lambda: [
            p
            for p in kube.pods(namespace, "app=disk")
            if p["metadata"]["uid"] != uid and kube.pod_ready(namespace, p["metadata"]["name"])
        ],
        90,
        "replacement pod Ready",
    )[0]
    out = kubectl("exec", "-n", namespace, new["metadata"]["name"], "--", "ls", "-A", "/scratch")
    assert out.strip() == "", f"the replacement's emptyDir is not empty: {out!r}"


def test_cluster_ip_from_host_and_pod_to_pod_traffic(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_pod(namespace, _pod("server", _web_with_disk("server"), {"app": "server"}))
    kube.core.create_namespaced_pod(namespace, _pod("client", _web_with_disk("client")))
    kube.core.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server"},
            "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    for pod in ("server", "client"):
        kube.wait_for(lambda pod=pod: kube.pod_ready(namespace, pod), 90, f"pod {pod} Ready")
    cluster_ip = kube.core.read_namespaced_service("server", namespace).spec.cluster_ip
    kube.wait_for(lambda: any(kube.endpoint_states(namespace, "server").values()), 30, "ready endpoint")

    body = kube.wait_for(lambda: http_get(f"http://{cluster_ip}/version"), 30, "HTTP through the ClusterIP")
    assert body == "1"
    server_ip = kube.pod(namespace, "server")["status"]["podIP"]
    out = kubectl("exec", "-n", namespace, "client", "--", "wget", "-qO-", f"http://{server_ip}:8080/version")
    assert out == "1"
    out = kubectl("exec", "-n", namespace, "client", "--", "wget", "-qO-", f"http://{cluster_ip}/version")
    assert out == "1"


def _service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def test_every_containers_readiness_probe_gates_the_endpoint(kube: Kube, namespace: str) -> None:
    """What auto-start relies on: a second container's probe (against the pod IP) holds the pod out
    of the Service until it passes, though the main container is ready."""
    spec = _web_with_disk()
    spec["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    spec["containers"].append(
        restricted_container(
            "second-check",
            command=["sleep", "3600"],
            readinessProbe={"tcpSocket": {"port": 9090}, "periodSeconds": 1, "failureThreshold": 1},
        )
    )
    kube.core.create_namespaced_pod(namespace, _pod("checked", spec, {"app": "checked"}))
    kube.core.create_namespaced_service(namespace, _service("checked", {"app": "checked"}))

    def main_ready() -> bool:
        statuses = kube.pod(namespace, "checked")["status"].get("containerStatuses") or []
        return any(s["name"] == "web" and s["ready"] for s in statuses)

    kube.wait_for(main_ready, 90, "main container ready")
    pod_ip = kube.pod(namespace, "checked")["status"]["podIP"]
    kube.wait_for(lambda: pod_ip in kube.endpoint_states(namespace, "checked"), 30, "endpoint listed")
    assert kube.endpoint_states(namespace, "checked")[pod_ip] is False
    assert not kube.pod_ready(namespace, "checked")

    kubectl("exec", "-n", namespace, "checked", "-c", "web", "--", "httpd", "-p", "9090", "-h", "/www")
    kube.wait_for(lambda: kube.endpoint_states(namespace, "checked").get(pod_ip), 30, "endpoint ready")
    assert kube.pod_ready(namespace, "checked")


def test_a_label_the_service_selects_takes_a_ready_pod_out_and_back(kube: Kube, namespace: str) -> None:
    """What busy and the drains rely on: the EndpointSlice controller follows the pod's labels, while
    the kubelet keeps the pod Ready (so a Deployment still counts it available)."""
    kube.core.create_namespaced_pod(namespace, _pod("labelled", _web_with_disk(), {"app": "l", "in": "true"}))
    kube.core.create_namespaced_service(namespace, _service("labelled", {"app": "l", "in": "true"}))
    kube.wait_for(lambda: kube.pod_ready(namespace, "labelled"), 90, "pod Ready")
    pod_ip = kube.pod(namespace, "labelled")["status"]["podIP"]
    kube.wait_for(lambda: kube.endpoint_states(namespace, "labelled").get(pod_ip), 30, "endpoint ready")

    kube.core.patch_namespaced_pod("labelled", namespace, {"metadata": {"labels": {"in": "busy"}}})
    kube.wait_for(lambda: pod_ip not in kube.endpoint_states(namespace, "labelled"), 30, "endpoint gone")
    assert kube.pod_ready(namespace, "labelled")
    kube.core.patch_namespaced_pod("labelled", namespace, {"metadata": {"labels": {"in": "true"}}})
    kube.wait_for(lambda: kube.endpoint_states(namespace, "labelled").get(pod_ip), 30, "endpoint back")


def test_deployment_replaces_deleted_pod_and_owner_deletion_collects_dependents(
    kube: Kube, namespace: str
) -> None:
    template = {"metadata": {"labels": {"app": "gc"}}, "spec": _web_with_disk()}
    kube.apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gc"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gc"}}, "template": template},
        },
    )
    first = kube.wait_for(lambda: kube.pods(namespace, "app=gc"), 60, "first pod")[0]["metadata"]
    kube.core.delete_namespaced_pod(first["name"], namespace)
    kube.wait_for(
        lambda: [p for p in kube.pods(namespace, "app=gc") if p["metadata"]["uid"] != first["uid"]],
        60,
        "replacement pod",
    )

    kube.apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")
    kube.wait_for(
        lambda: not kube.apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items,
        60,
        "ReplicaSet garbage-collected",
    )
    kube.wait_for(lambda: not kube.pods(namespace, "app=gc"), 60, "pods garbage-collected")


def test_restricted_namespace_rejects_privileged_pod(kube: Kube, namespace: str) -> None:
    privileged = restricted_container()
    privileged["securityContext"] = {"privileged": True}
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_pod(namespace, _pod("privileged", restricted_pod_spec(privileged)))
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "web" must not set securityContext.privileged=true)' in message
