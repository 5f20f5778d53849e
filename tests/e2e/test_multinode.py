"""What only several nodes can show: pod and Service traffic between
nodes, and a reimage that drops no request sent from another node.

They run on the kind cluster (one control plane, two workers: `CLUSTER=kind make test`) and skip on
a cluster with fewer than two schedulable nodes, such as the local one.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import REPO, kubectl
from .kube import Kube, http_get, restricted_container, restricted_pod_spec
from .roles import create_role, get_role, instances, role_manifest, wait_available

pytestmark = pytest.mark.usefixtures("operator")
HOSTNAME = "kubernetes.io/hostname"
RESULTS = REPO / ".cluster" / "logs" / "reimage-across-nodes.json"


def _client_pod(kube: Kube, namespace: str, node: str, command: list[str] | None = None) -> str:
    """A pod of the test image on `node`, with a writable /tmp, that stays up until deleted."""
    name = f"client-{uuid.uuid4().hex[:5]}"
    container = restricted_container(
        "client",
        command=command or ["sleep", "3600"],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    spec = restricted_pod_spec(
        container, nodeSelector={HOSTNAME: node}, volumes=[{"name": "tmp", "emptyDir": {}}]
    )
    kube.core.create_namespaced_pod(
        namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    )
    kube.wait_for(
        lambda: (kube.pod(namespace, name)["status"].get("containerStatuses") or [{}])[0].get("started"),
        90,
        f"pod {name} running on {node}",
    )
    return name


def _wget(namespace: str, pod: str, url: str) -> str:
    return kubectl("exec", "-n", namespace, pod, "--", "wget", "-qO-", url)


def test_pod_service_and_dns_traffic_between_nodes(kube: Kube, namespace: str, workers: list[str]) -> None:
    server_node, client_node = workers[1], workers[0]
    create_role(kube, namespace, role_manifest(instances=2, nodeSelector={HOSTNAME: server_node}))
    wait_available(kube, namespace, "web", ready=2)
    pods = instances(kube, namespace, "web")
    assert {p["spec"]["nodeName"] for p in pods} == {server_node}
    client = _client_pod(kube, namespace, client_node)
    cluster_ip = kube.core.read_namespaced_service("web", namespace).spec.cluster_ip

    for pod in pods:
        # Pod to pod across nodes, routed (not masqueraded): the server logs the client pod's own IP.
        assert _wget(namespace, client, f"http://{pod['status']['podIP']}:8080/version") == "1"
        # The host (where the operator probes from) reaches pods on every node.
        assert http_get(f"http://{pod['status']['podIP']}:8080/version") == "1"
    client_ip = kube.pod(namespace, client)["status"]["podIP"]
    logs = "".join(kubectl("logs", "-n", namespace, p["metadata"]["name"]) for p in pods)
    assert client_ip in logs, f"no request from {client_ip} in the instances' logs"
    # The ClusterIP through the client node's kube-proxy, and the Service's name through CoreDNS.
    assert _wget(namespace, client, f"http://{cluster_ip}/version") == "1"
    assert _wget(namespace, client, "http://web/version") == "1"
    assert http_get(f"http://{cluster_ip}/version") == "1"


def _load_script(url: str) -> list[str]:
    """Requests in a loop until /tmp/stop exists; one line per failure, totals at the end."""
    loop = (
        "n=0; f=0; while [ ! -e /tmp/stop ]; do n=$((n+1)); "
        f'if ! timeout 3 wget -q -O /dev/null {url}; then f=$((f+1)); echo "failed $n $(date +%s)"; fi; '
        'sleep 0.02; done; echo "total $n failed $f"; sleep 3600'
    )
    return ["sh", "-c", loop]


def test_reimage_drops_no_request_from_another_node(kube: Kube, namespace: str, workers: list[str]) -> None:
    server_node, client_node = workers[1], workers[0]
    create_role(kube, namespace, role_manifest(instances=2, nodeSelector={HOSTNAME: server_node}))
    wait_available(kube, namespace, "web", ready=2)
    kube.wait_for(lambda: sum(kube.endpoint_states(namespace, "web").values()) == 2, 30, "endpoints ready")
    cluster_ip = kube.core.read_namespaced_service("web", namespace).spec.cluster_ip
    kube.wait_for(lambda: http_get(f"http://{cluster_ip}/version") == "1", 30, "the ClusterIP answering")

    client = _client_pod(kube, namespace, client_node, _load_script(f"http://{cluster_ip}/version"))
    started = time.monotonic()
    time.sleep(2)
    for victim in instances(kube, namespace, "web"):
        uid, name = victim["metadata"]["uid"], victim["metadata"]["name"]
        kubectl("annotate", "pod", "-n", namespace, name, f"vmrole.dev/reimage=across-{uid[:8]}")
        kube.wait_for(lambda uid=uid: _replaced(kube, namespace, uid), 120, f"{name} reimaged")
    time.sleep(2)
    kubectl("exec", "-n", namespace, client, "--", "touch", "/tmp/stop")

    def totals() -> str | None:
        out = kubectl("logs", "-n", namespace, client)
        return out if "total " in out else None

    log = kube.wait_for(totals, 30, "load totals")
    seconds = time.monotonic() - started
    total, failed = (int(x) for x in re.findall(r"total (\d+) failed (\d+)", log)[0])
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "client_node": client_node,
        "server_node": server_node,
        "reimaged": 2,
        "requests": total,
        "failed": failed,
        "seconds": round(seconds, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    assert total > 100, result
    assert failed == 0, log


def _replaced(kube: Kube, namespace: str, uid: str) -> bool:
    pods = kube.pods(namespace, "vmrole.dev/role=web")
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return (
        uid not in {p["metadata"]["uid"] for p in pods}
        and len(live) == 2
        and all(kube.pod_ready(namespace, p["metadata"]["name"]) for p in live)
        and (get_role(kube, namespace, "web").get("status") or {}).get("readyReplicas") == 2
    )
