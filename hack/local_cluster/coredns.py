"""CoreDNS for the local cluster: the cluster DNS kubeadm would install, written out by hand.

The binary comes from hack/build-coredns.sh (the version kubeadm v1.34 deploys, which the kind nodes
also carry), imported as a one-file image under kubeadm's name for it. The objects follow kubeadm's
CoreDNS add-on: the `kube-dns` Service at the tenth address of the Service range, which the
kubelet hands to pods as their nameserver, and a Corefile that answers cluster.local from the API
and forwards everything else to the host's resolvers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from .host import ClusterError

IMAGE = "registry.k8s.io/coredns/coredns:v1.12.1"
CLUSTER_DNS_IP = "10.96.0.10"
COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""


def build_binary() -> Path:
    script = Path(__file__).resolve().parents[1] / "build-coredns.sh"
    out = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise ClusterError("building CoreDNS failed (see the output above)")
    return Path(out.stdout.strip().splitlines()[-1])


def image_archive(binary: Path) -> bytes:
    from images import build_image_archive

    return build_image_archive(
        IMAGE,
        {"usr/local/bin/coredns": binary.read_bytes()},
        executables={"usr/local/bin/coredns"},
        entrypoint=["/usr/local/bin/coredns"],
    )


def manifests() -> list[dict[str, object]]:
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": "kube-system"}
    container = {
        "name": "coredns",
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 60},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        # The host's resolvers, for names outside the cluster.
                        "dnsPolicy": "Default",
                        "containers": [container],
                        "volumes": [{"name": "config-volume", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "protocol": "TCP"},
                ],
            },
        },
    ]


def deploy(
    config_dir: Path,
    ctr: Callable[..., subprocess.CompletedProcess[bytes]],
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """Imports the image into the node and applies the objects (idempotent)."""
    result = ctr("images", "import", "-", stdin=image_archive(build_binary()))
    if result.returncode != 0:
        raise ClusterError(f"importing the CoreDNS image failed: {result.stderr.decode().strip()}")
    path = config_dir / "coredns.yaml"
    path.write_text(yaml.safe_dump_all(manifests()))
    applied = kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    if applied.returncode != 0:
        raise ClusterError(f"applying CoreDNS failed: {applied.stderr.strip()}")


def available(kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> bool:
    out = kubectl(
        "get", "deployment", "coredns", "-n", "kube-system", "-o", "jsonpath={.status.availableReplicas}"
    )
    return out.stdout.strip() == "1"
