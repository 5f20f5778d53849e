"""The pod network of the kind cluster, in place of kindnetd (whose module is not served here).

What kindnetd does, done once from outside when the nodes have joined: each node gets a CNI
configuration (bridge + host-local on the pod CIDR the controller-manager gave it, portmap) and a
route to every other node's pod CIDR through that node's address on the docker network. Pod traffic
is routed, never masqueraded, so a pod sees the real source of a request from another node.

The host gets the same routes, plus the Service range through the control-plane node, because the
suite runs where the operator runs: on the host, probing pod IPs and calling ClusterIPs, as on the
local cluster. They go with the docker network's bridge, and `remove_host_routes` also drops them.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from local_cluster.host import ClusterError

POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.96.0.0/16"
CNI_CONFIG = "/etc/cni/net.d/10-vmrole.conflist"
CLUSTER_LABEL = "io.x-k8s.kind.cluster"


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    pod_cidr: str


def _run(*args: str, data: str | None = None) -> str:
    result = subprocess.run(list(args), input=data, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise ClusterError(f"{' '.join(args[:5])} ... failed: {result.stderr.strip()[-600:]}")
    return result.stdout


def node_names(cluster: str) -> list[str]:
    out = _run("docker", "ps", "-a", "--filter", f"label={CLUSTER_LABEL}={cluster}", "--format", "{{.Names}}")
    return sorted(out.split())


def _node_ip(name: str) -> str:
    return _run(
        "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name
    ).split()[0]


def nodes(cluster: str, kubectl: Callable[..., str], timeout: float = 60) -> list[Node]:
    """Every node with its pod CIDR, waiting until the controller-manager has given each one."""
    names = node_names(cluster)
    deadline = time.monotonic() + timeout
    while True:
        listing = json.loads(kubectl("get", "nodes", "-o", "json"))
        cidrs = {n["metadata"]["name"]: n["spec"].get("podCIDR", "") for n in listing["items"]}
        if all(cidrs.get(name) for name in names):
            return [Node(name, _node_ip(name), cidrs[name]) for name in names]
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes without a pod CIDR after {timeout:.0f}s: {cidrs}")
        time.sleep(1)


def cni_config(node: Node) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "vmrole",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": node.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def setup(all_nodes: list[Node]) -> None:
    for node in all_nodes:
        script = [f"cat > {CNI_CONFIG}.tmp && mv {CNI_CONFIG}.tmp {CNI_CONFIG}"]
        script += [f"ip route replace {o.pod_cidr} via {o.ip}" for o in all_nodes if o != node]
        _run("docker", "exec", "-i", node.name, "sh", "-ec", "; ".join(script), data=cni_config(node))
    for node in all_nodes:
        _run("ip", "route", "replace", node.pod_cidr, "via", node.ip)
    control_plane = next(n for n in all_nodes if n.name.endswith("-control-plane"))
    _run("ip", "route", "replace", SERVICE_SUBNET, "via", control_plane.ip)


def _ours(destination: str) -> bool:
    try:
        net = ipaddress.ip_network(destination)
    except ValueError:
        return False
    return any(net.subnet_of(ipaddress.ip_network(s)) for s in (POD_SUBNET, SERVICE_SUBNET))  # type: ignore[arg-type]


def host_routes() -> list[str]:
    """Host routes into the cluster's ranges that go through a gateway (the kind nodes)."""
    return [
        line
        for line in _run("ip", "-4", "route", "show").splitlines()
        if " via " in line and _ours(line.split()[0])
    ]


def remove_host_routes() -> None:
    for line in host_routes():
        subprocess.run(["ip", "route", "delete", line.split()[0]], capture_output=True, check=False)
