"""A role's NetworkPolicy, enforced (kube-router on the local cluster): its internal endpoints answer
only its own instances and its peer group, its input endpoint everyone, through its Service."""

from __future__ import annotations

import os
import subprocess

import pytest

from .kube import Kube, http_get
from .roles import create_role, instances, role_manifest, wait_available

pytestmark = [
    pytest.mark.usefixtures("operator"),
    # The kind cluster's pod network is a plain bridge (no kindnetd offline), enforcing no policy.
    pytest.mark.skipif(
        os.environ.get("VMROLE_CLUSTER") != "local",
        reason="needs a cluster known to enforce NetworkPolicies: the local one runs kube-router",
    ),
]

# The golden image serves /www on 8080 (the input endpoint's target); a second server on 7000 is
# the internal endpoint. httpd without -f goes to the background by itself.
SERVE_BOTH = ["/bin/sh", "-c", "httpd -p 7000 -h /www && exec /usr/local/bin/serve"]
CHECKS = [{"name": "http", "tcpSocket": {"port": 8080}}]


def fetch(namespace: str, pod: str, url: str) -> subprocess.CompletedProcess[str]:
    """GET `url` from inside `pod`; nc's -w bounds the connect, so a dropped SYN fails too."""
    host, _, port = url.removeprefix("http://").partition(":")
    request = f"printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}"
    return subprocess.run(
        ["kubectl", "exec", "-n", namespace, pod, "-c", "role", "--", "/bin/sh", "-c", request],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def answered(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and "200 OK" in result.stdout


def test_internal_endpoints_answer_only_the_role_and_its_peer_group(kube: Kube, namespace: str) -> None:
    internal = {"internal": [{"name": "peer", "port": 7000}]}
    web = role_manifest(
        "web",
        instances=2,
        command=SERVE_BOTH,
        autoStart=CHECKS,
        endpoints={
            "input": [{"name": "http", "port": 80, "targetPort": 8080}],
            **internal,
            "peerGroup": "front",
        },
    )
    peer = role_manifest("peer", autoStart=CHECKS, endpoints={**internal, "peerGroup": "front"})
    stranger = role_manifest("stranger", autoStart=CHECKS, endpoints=internal)
    for manifest in (web, peer, stranger):
        create_role(kube, namespace, manifest)
    # Every instance passed its checks while the policies were in force: the kubelet's probes come
    # from the node, which the enforcer lets through.
    for name, count in (("web", 2), ("peer", 1), ("stranger", 1)):
        wait_available(kube, namespace, name, ready=count)
    policy = kube.networking.read_namespaced_network_policy("web", namespace)
    assert policy.spec.ingress[0].ports[0].port == 7000

    [target, sibling] = instances(kube, namespace, "web")
    target_ip = target["status"]["podIP"]
    [peer_pod] = instances(kube, namespace, "peer")
    [stranger_pod] = instances(kube, namespace, "stranger")

    def from_pod(pod: dict[str, object], url: str) -> subprocess.CompletedProcess[str]:
        return fetch(namespace, str(pod["metadata"]["name"]), url)  # type: ignore[index]

    internal_url = f"http://{target_ip}:7000"
    same_role = from_pod(sibling, internal_url)
    assert answered(same_role), same_role
    same_group = from_pod(peer_pod, internal_url)
    assert answered(same_group), same_group
    refused = from_pod(stranger_pod, internal_url)
    assert not answered(refused), refused

    # The input endpoint is for everyone: the pod's port, and the Service in front of it.
    direct = from_pod(stranger_pod, f"http://{target_ip}:8080")
    assert answered(direct), direct
    cluster_ip = kube.core.read_namespaced_service("web", namespace).spec.cluster_ip
    through_service = from_pod(stranger_pod, f"http://{cluster_ip}:80")
    assert answered(through_service), through_service
    assert http_get(f"http://{cluster_ip}/version") == "1"  # from the node, too
