"""The local cluster's NetworkPolicy enforcer: kube-router in firewall-only mode, next to the bridge CNI.

The bridge plugin connects pods but enforces no policy, so without this a role's NetworkPolicy would
be an object nobody acts on. kube-router runs as a host process like kube-proxy, with its own client
certificate and a read-only ClusterRole, and leaves routing and Services to the bridge and kube-proxy.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from .host import ClusterError
from .pki import ClusterPKI, write_kubeconfig

COMPONENT = "kube-router"
USER = "vmrole:kube-router"
HEALTH_PORT = 20244
# What its informers list and watch (it starts them all, whichever controllers run), and its Events.
RBAC = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": USER},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "namespaces", "nodes", "services", "endpoints"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["networkpolicies"],
                "verbs": ["list", "watch"],
            },
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    },
]


def binary() -> str:
    """Builds kube-router once (hack/build-kube-router.sh caches it by version); its path."""
    script = Path(__file__).resolve().parent.parent / "build-kube-router.sh"
    out = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        raise ClusterError("building kube-router failed (see the output above)")
    return out.stdout.strip().splitlines()[-1]


def write_rbac(config_dir: Path) -> Path:
    path = config_dir / "kube-router-rbac.yaml"
    path.write_text(yaml.safe_dump_all(RBAC))
    return path


def write_client_kubeconfig(pki: ClusterPKI, kubeconfigs: Path) -> Path:
    cert, key = pki.issue(COMPONENT, USER)
    path = kubeconfigs / f"{COMPONENT}.kubeconfig"
    write_kubeconfig(path, "https://127.0.0.1:6443", pki.ca_cert_path, cert, key, USER)
    return path


def args(kubeconfig: Path, node_name: str, service_cidr: str) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        # The bridge plugin is the CNI; kube-router must not write a CNI config of its own.
        "--enable-cni=false",
        f"--service-cluster-ip-range={service_cidr}",
        f"--health-port={HEALTH_PORT}",
        "--metrics-port=0",
    ]


def enforcing() -> bool:
    """Its controllers report healthy and its filter chains are hooked into FORWARD."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/healthz", timeout=2) as r:
            if r.status != 200:
                return False
    except (urllib.error.URLError, OSError):
        return False
    saved = subprocess.run(["iptables-nft-save", "-t", "filter"], capture_output=True, text=True, check=False)
    return "-j KUBE-ROUTER-FORWARD" in saved.stdout
