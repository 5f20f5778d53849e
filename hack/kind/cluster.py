"""CLUSTER=kind: the kind cluster `vmrole` (one control plane, two workers) on the offline node image.

`up` starts Docker when none answers (dockerd.py), builds or reuses the node image (node_image.py),
creates the cluster with kind, lays the pod network (network.py) and waits until every node is
Ready and CoreDNS answers. `down` deletes the cluster and the docker network kind made, drops the
host routes, stops the dockerd it started and puts the host back. The apiserver's audit log lands in
`.cluster/logs/audit.log`, where the local cluster writes it, so the suite reads it the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from local_cluster.host import CLUSTER_DIR_ENV, ClusterError
from local_cluster.launcher import CONTROL_PLANE_CLIENT_RATE, LocalCluster

from . import dockerd, network, node_image

NETWORK = "kind"
WORKERS = 2
AUDIT_DIR_IN_NODE = "/var/log/kubernetes/audit"
AUDIT_POLICY_DIR_IN_NODE = "/etc/kubernetes/audit"


def local_cluster_processes() -> list[str]:
    """Processes of a local cluster (any checkout whose cluster directory still exists)."""
    found = []
    prefix = f"{CLUSTER_DIR_ENV}=".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        marks = [e[len(prefix) :].decode() for e in environ if e.startswith(prefix)]
        if marks and Path(marks[0]).exists():
            found.append(f"{comm} (pid {entry.name}, {marks[0]})")
    return found


# Every node's kubelet as the local cluster's: emptyDir usage measured every 10 s (default 1 min), so
# an instance past its disk's size limit is evicted within seconds, as the tests expect.
KUBELET_PATCH = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "kind": "KubeletConfiguration",
    "volumeStatsAggPeriod": "10s",
}


def host_address_on_kind_network(network: str = "kind") -> str:
    """The host's address on the docker network the nodes share (its gateway)."""
    out = subprocess.run(
        ["docker", "network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    for address in out.stdout.split():
        if "." in address:  # the IPv4 one
            return address
    raise ClusterError(
        f"docker network {network} has no IPv4 gateway: {out.stderr.strip() or out.stdout.strip()}"
    )


class KindCluster:
    def __init__(self, cluster_dir: Path, name: str, bin_dir: Path, kind: str, coredns: Path | None) -> None:
        self.cluster_dir = cluster_dir
        self.name = name
        self.bin_dir = bin_dir
        self.kind = kind
        self.coredns = coredns
        self.kubeconfig = cluster_dir / "kubeconfig"
        self.config_dir = cluster_dir / "kind"
        self.logs = cluster_dir / "logs"

    # ---- helpers ----------------------------------------------------------------------------------

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-400:]}")
        return result.stdout

    def exists(self) -> bool:
        if not dockerd.answers():
            return False
        out = subprocess.run(
            [self.kind, "get", "clusters"], capture_output=True, text=True, check=False
        ).stdout
        return self.name in out.split()

    def _all_ready(self) -> bool:
        try:
            out = self.kubectl(
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status} {end}",
            )
        except (ClusterError, subprocess.TimeoutExpired):
            return False
        states = out.split()
        return len(states) == 1 + WORKERS and all(s == "True" for s in states)

    def healthy(self) -> bool:
        return self.kubeconfig.exists() and self.exists() and self._all_ready()

    def wait_for(self, what: str, check: object, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (ClusterError, subprocess.TimeoutExpired):
                pass
            time.sleep(1)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")

    # ---- configuration ---------------------------------------------------------------------------

    def write_config(self, image: str) -> Path:
        """kind's configuration: three nodes on our image, no default CNI, audit log to the host."""
        policy_dir = self.config_dir / "config"
        policy_dir.mkdir(parents=True, exist_ok=True)
        # The local cluster's policy (writes only, Metadata level), written where we mount it from.
        LocalCluster(self.config_dir, Path("/nonexistent")).write_audit_policy()
        self.logs.mkdir(parents=True, exist_ok=True)
        rate = dict(flag.removeprefix("--").split("=", 1) for flag in CONTROL_PLANE_CLIENT_RATE)
        cluster_patch = {
            "kind": "ClusterConfiguration",
            # The etcd image carries the etcd the binaries were built with, tagged as such.
            "etcd": {"local": {"imageTag": node_image.ETCD_TAG}},
            "apiServer": {
                "extraArgs": {
                    "audit-policy-file": f"{AUDIT_POLICY_DIR_IN_NODE}/audit-policy.yaml",
                    "audit-log-path": f"{AUDIT_DIR_IN_NODE}/audit.log",
                    "audit-log-maxsize": "200",
                    "audit-log-maxbackup": "1",
                },
                "extraVolumes": [
                    {
                        "name": "audit-policy",
                        "hostPath": AUDIT_POLICY_DIR_IN_NODE,
                        "mountPath": AUDIT_POLICY_DIR_IN_NODE,
                        "readOnly": True,
                        "pathType": "Directory",
                    },
                    {
                        "name": "audit-log",
                        "hostPath": AUDIT_DIR_IN_NODE,
                        "mountPath": AUDIT_DIR_IN_NODE,
                        "pathType": "DirectoryOrCreate",
                    },
                ],
            },
            # The same client rate as the local cluster's, so benchmarks compare alike.
            "controllerManager": {"extraArgs": rate},
            "scheduler": {"extraArgs": rate},
        }
        config = {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "networking": {
                # kindnetd is not to be had offline; network.py lays the pod network instead.
                "disableDefaultCNI": True,
                "podSubnet": network.POD_SUBNET,
                "serviceSubnet": network.SERVICE_SUBNET,
            },
            "kubeadmConfigPatches": [yaml.safe_dump(cluster_patch), yaml.safe_dump(KUBELET_PATCH)],
            "nodes": [
                {
                    "role": "control-plane",
                    "image": image,
                    "extraMounts": [
                        {
                            "hostPath": str(policy_dir),
                            "containerPath": AUDIT_POLICY_DIR_IN_NODE,
                            "readOnly": True,
                        },
                        {"hostPath": str(self.logs), "containerPath": AUDIT_DIR_IN_NODE},
                    ],
                },
                *({"role": "worker", "image": image} for _ in range(WORKERS)),
            ],
        }
        path = self.config_dir / "kind-config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def write_env(self) -> None:
        (self.cluster_dir / "env").write_text(
            "# Generated by hack/cluster.py: the server's kubectl first on PATH, this cluster selected.\n"
            f"export KUBECONFIG={self.kubeconfig}\n"
            f"export PATH={self.bin_dir}:{Path(self.kind).parent}:$PATH\n"
            "export VMROLE_CLUSTER=kind\n"
            f"export KIND_CLUSTER_NAME={self.name}\n"
            # The tests' operators run on the host; the API server, in a node, calls their admission
            # webhooks at the host's address on the nodes' network.
            f"export VMROLE_E2E_WEBHOOK_HOST={host_address_on_kind_network()}\n"
        )

    # ---- verbs -------------------------------------------------------------------------------------

    def up(self) -> None:
        if self.healthy():
            self.write_env()
            print(f"kind cluster {self.name} already up; nothing to do")
            return
        local = local_cluster_processes()
        if local:
            raise ClusterError(
                f"the local cluster is up ({local[0]}); the two cannot run at once: `make cluster-down` first"
            )
        assert self.coredns is not None
        t0 = time.monotonic()
        dockerd.start()
        t_docker = time.monotonic()
        image = node_image.ensure(self.bin_dir, self.coredns)
        node_image.load(image)
        node_image.prune(image)
        t_image = time.monotonic()
        if self.exists():
            subprocess.run([self.kind, "delete", "cluster", "--name", self.name], check=False)
        config = self.write_config(image.ref)
        self.cluster_dir.mkdir(exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        t1 = time.monotonic()
        created = subprocess.run(
            [
                self.kind,
                "create",
                "cluster",
                "--name",
                self.name,
                "--config",
                str(config),
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            check=False,
        )
        if created.returncode != 0:
            raise ClusterError(
                f"kind create cluster failed (status {created.returncode}); see its output above"
            )
        t_created = time.monotonic()
        all_nodes = network.nodes(self.name, self.kubectl)
        network.setup(all_nodes)
        self.wait_for(f"{len(all_nodes)} nodes Ready", self._all_ready, 120)
        self.wait_for(
            "CoreDNS available",
            lambda: (
                self.kubectl(
                    "get",
                    "deployment",
                    "coredns",
                    "-n",
                    "kube-system",
                    "-o",
                    "jsonpath={.status.availableReplicas}",
                ).strip()
                == "2"
            ),
            120,
        )
        self.wait_for(
            "default ServiceAccount",
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default"),
            60,
        )
        self.write_env()
        summary = ", ".join(f"{n.name} {n.ip} pods {n.pod_cidr}" for n in all_nodes)
        done = time.monotonic()
        print(
            f"kind cluster {self.name} up in {done - t0:.0f}s (docker {t_docker - t0:.0f}s, node image "
            f"{t_image - t_docker:.0f}s, kind create {t_created - t1:.0f}s, network to Ready and CoreDNS "
            f"{done - t_created:.0f}s): {summary}; source {self.cluster_dir / 'env'}"
        )

    def down(self) -> None:
        if dockerd.answers():
            if self.exists():
                subprocess.run([self.kind, "delete", "cluster", "--name", self.name], check=True)
            # kind leaves its network for the next cluster; nothing else here uses it.
            if subprocess.run(["docker", "network", "inspect", NETWORK], capture_output=True).returncode == 0:
                subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True, check=False)
        network.remove_host_routes()
        problems = dockerd.stop()
        problems += [f"route {r}" for r in network.host_routes()]
        for f in ("env", "kubeconfig"):
            (self.cluster_dir / f).unlink(missing_ok=True)
        if problems:
            raise ClusterError(f"teardown left {', '.join(problems)}")
        print("kind cluster down: no container, docker network, dockerd, iptables chain or route left")

    def status(self) -> bool:
        if not self.exists():
            print(f"kind cluster {self.name}: not running")
            return False
        print(self.kubectl("get", "nodes", "-o", "wide"), end="")
        return self._all_ready()


def kind_binary() -> str:
    """kind as hack/build-kind.sh builds it (the release the node image is made for), else PATH's."""
    script = Path(__file__).resolve().parents[1] / "build-kind.sh"
    out = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode == 0:
        return out.stdout.strip().splitlines()[-1]
    found = shutil.which("kind")
    if found is None:
        raise ClusterError(
            "CLUSTER=kind needs kind: install go (hack/build-kind.sh builds it) or put kind on PATH"
        )
    return found


def coredns_binary() -> Path:
    here = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        ["bash", str(here / "build-coredns.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if out.returncode != 0:
        raise ClusterError("building CoreDNS failed (see the output above)")
    return Path(out.stdout.strip().splitlines()[-1])


def from_environment(cluster_dir: Path, name: str, bin_dir: Path, building: bool) -> KindCluster:
    if os.uname().sysname != "Linux":
        raise ClusterError("CLUSTER=kind here needs Linux: the suite reaches pod IPs from the host")
    return KindCluster(cluster_dir, name, bin_dir, kind_binary(), coredns_binary() if building else None)
