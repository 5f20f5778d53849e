"""Starts a single-node Kubernetes cluster as host processes: etcd, control plane, containerd,
kubelet and kube-proxy, all writing their state, logs and pids under one directory."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from . import cleanup, coredns, network_policy
from .host import (
    CLUSTER_DIR_ENV,
    ClusterError,
    alive,
    default_route_ip,
    port_owner,
    terminate,
    write_sysctl,
)
from .pki import ClusterPKI, write_kubeconfig

NODE_NAME = "vmrole-node"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_API_IP = "10.96.0.1"
# Not 10.88.0.0/16: that is podman's and buildah's default bridge (cni-podman0), and the operator
# image is built with buildah on this same host; two routes for one range broke pod traffic.
POD_CIDR = "10.244.0.0/16"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.1"
# The controllers' and scheduler's client rate (default 20 QPS, burst 30) is what bounds a burst of
# 1,000 Deployments here, not CPU; scalability tests raise it the same way (bench/ scale floor).
CONTROL_PLANE_CLIENT_RATE = ("--kube-api-qps=100", "--kube-api-burst=200")
PORTS = {
    "etcd": 2379,
    "etcd-peer": 2380,
    "kube-apiserver": 6443,
    "kube-controller-manager": 10257,
    "kube-scheduler": 10259,
    "kubelet": 10250,
    "kubelet-healthz": 10248,
    "kube-proxy-healthz": 10256,
    "kube-proxy-metrics": 10249,
    "kube-router-healthz": 20244,
}
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "kube-router",
)


@dataclass(frozen=True)
class Layout:
    """Where everything of one local cluster lives (`.cluster/` in the repo root)."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.containerd / "runc"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def cni(self) -> Path:
        return self.root / "cni"

    @property
    def config(self) -> Path:
        return self.root / "config"

    def state_dirs(self) -> list[Path]:
        """Everything teardown removes; pki and logs are kept for the post-mortem."""
        return [
            self.etcd_data,
            self.containerd,
            self.kubelet,
            self.cni,
            self.config,
            self.pids,
            self.bin,
            self.root / "kubeconfigs",
        ]


class LocalCluster:
    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.layout = Layout(root)
        self.bin_dir = bin_dir
        self.node_ip = ""

    # ---- public verbs ---------------------------------------------------------------------------

    def up(self) -> None:
        if self.healthy():
            print(f"local cluster already up (node {NODE_NAME}); nothing to do")
            return
        self.down(quiet=True)
        self.check_host()
        self.node_ip = default_route_ip()
        for d in (self.layout.pki, self.layout.logs, self.layout.pids, self.layout.bin, self.layout.config):
            d.mkdir(parents=True, exist_ok=True)
        self.write_tool_links()
        self.write_pki()
        write_sysctl("net.ipv4.ip_forward", "1")
        write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
        t0 = time.monotonic()
        self.start("etcd", self.etcd_args())
        self.start("kube-apiserver", self.apiserver_args())
        self.wait_for("kube-apiserver /readyz", self.apiserver_ready, 90)
        self.kubectl(
            "create",
            "clusterrolebinding",
            "vmrole-apiserver-kubelet-api-admin",
            "--clusterrole=system:kubelet-api-admin",
            "--user=kube-apiserver-kubelet-client",
        )
        self.start("kube-controller-manager", self.controller_manager_args())
        self.start("kube-scheduler", self.scheduler_args())
        self.start("containerd", ["--config", str(self.write_containerd_config())])
        self.wait_for("containerd socket", self.layout.containerd_socket.exists, 30)
        self.import_sandbox_image()
        self.start("kubelet", self.kubelet_args())
        self.start("kube-proxy", ["--config", str(self.write_kube_proxy_config())])
        self.start_network_policy_enforcer()
        self.wait_for(f"node {NODE_NAME} Ready", self.node_ready, 120)
        self.wait_for("default ServiceAccount", self.default_service_account_exists, 60)
        coredns.deploy(self.layout.config, self.ctr, self.kubectl)
        self.wait_for("CoreDNS available", lambda: coredns.available(self.kubectl), 90)
        self.write_env()
        print(
            f"local cluster up in {time.monotonic() - t0:.0f}s: node {NODE_NAME} ({self.node_ip}); "
            f"source {self.layout.env_file}"
        )

    def down(self, quiet: bool = False) -> None:
        cleanup.teardown(self.layout.root, self.layout.pids, self.layout.runc_root, self.layout.state_dirs())
        rest = cleanup.leftovers()
        if rest:
            raise ClusterError(f"teardown left {', '.join(rest)}")
        for f in (self.layout.env_file, self.layout.kubeconfig):
            f.unlink(missing_ok=True)
        if not quiet:
            print("local cluster down: no process, mount, CNI interface, iptables chain or ipset left")

    def status(self) -> bool:
        ok = True
        for component in COMPONENTS:
            pid = self.pid_of(component)
            state = f"running (pid {pid})" if pid and alive(pid) else "stopped"
            ok = ok and state != "stopped"
            print(f"{component:26} {state}")
        if ok:
            print(self.kubectl("get", "nodes", "-o", "wide").stdout, end="")
        return ok and self.healthy()

    def restart(self, component: str) -> float:
        """Stops one component and starts it again with the very command line it was started with (so
        its flags, data directory and certificates are the same), then waits until it serves again.
        Returns the seconds it was away. Pods outlive a restart of the kubelet or containerd: the
        container shims are processes of their own."""
        if component not in COMPONENTS:
            raise ClusterError(f"unknown component {component!r}; one of: {', '.join(COMPONENTS)}")
        if not self.healthy():
            raise ClusterError("the local cluster is not up and healthy; `make cluster-up` first")
        argv = self.argv_of(component)
        pid = self.pid_of(component)
        t0 = time.monotonic()
        if pid is not None:
            terminate([pid], timeout=15)
        # Taken before the start: the kubelet's first node status after it carries a newer heartbeat.
        restarted_at = time.time()
        self.launch(component, argv)
        self.wait_for(f"{component} serving again", lambda: self.serving(component, restarted_at), 120)
        return time.monotonic() - t0

    def serving(self, component: str, since: float) -> bool:
        """The component answers as it does when healthy: its health endpoint, and for the kubelet a
        node status written after `since`."""
        if component == "etcd":
            return _http_ok("http://127.0.0.1:2379/health") and self.apiserver_ready()
        if component == "kube-apiserver":
            return self.apiserver_ready()
        if component in ("kube-controller-manager", "kube-scheduler"):
            return _http_ok(f"https://127.0.0.1:{PORTS[component]}/healthz", insecure=True)
        if component == "containerd":
            return self.ctr("version").returncode == 0
        if component == "kube-proxy":
            return _http_ok("http://127.0.0.1:10256/healthz")
        return _http_ok("http://127.0.0.1:10248/healthz") and self.node_ready(heartbeat_after=since)

    def healthy(self) -> bool:
        if not all((p := self.pid_of(c)) and alive(p) for c in COMPONENTS):
            return False
        return self.layout.kubeconfig.exists() and self.apiserver_ready() and self.node_ready()

    # ---- NetworkPolicy enforcement --------------------------------------------------------------

    def start_network_policy_enforcer(self) -> None:
        """kube-router, firewall only: the bridge plugin enforces no NetworkPolicy by itself."""
        if shutil.which("ipset") is None:
            raise ClusterError("ipset is missing; run `make setup` (hack/setup-host.sh) first")
        binary = network_policy.binary()
        rbac = self.kubectl("apply", "-f", str(network_policy.write_rbac(self.layout.config)))
        if rbac.returncode != 0:
            raise ClusterError(f"kube-router's RBAC: {rbac.stderr.strip()}")
        kubeconfig = network_policy.write_client_kubeconfig(
            ClusterPKI(self.layout.pki), self.layout.root / "kubeconfigs"
        )
        self.start(network_policy.COMPONENT, network_policy.args(kubeconfig, NODE_NAME, SERVICE_CIDR), binary)
        self.wait_for("kube-router enforcing NetworkPolicies", network_policy.enforcing, 90)

    # ---- host checks ----------------------------------------------------------------------------

    def check_host(self) -> None:
        if os.uname().sysname != "Linux":
            raise ClusterError("the local cluster runs only on Linux; use CLUSTER=kind elsewhere")
        if os.geteuid() != 0:
            raise ClusterError("the local cluster needs root (it runs containerd, kubelet and kube-proxy)")
        for tool in ("containerd", "runc", "ctr", "iptables-nft", "ip", "conntrack"):
            if shutil.which(tool) is None:
                raise ClusterError(f"{tool} is missing; run `make setup` (hack/setup-host.sh) first")
        if not Path("/usr/lib/cni/bridge").exists():
            raise ClusterError("CNI plugins are missing in /usr/lib/cni; run `make setup` first")
        for name, port in PORTS.items():
            owner = port_owner(port)
            if owner:
                raise ClusterError(f"port {port} ({name}) is already taken by {owner}")

    # ---- process handling -----------------------------------------------------------------------

    def pid_of(self, component: str) -> int | None:
        f = self.layout.pids / f"{component}.pid"
        try:
            return int(f.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, component: str, args: list[str], binary: str | None = None) -> None:
        binary = binary or (
            shutil.which(component) if component == "containerd" else str(self.bin_dir / component)
        )
        assert binary
        argv = [binary, *args]
        # Kept so that `restart` runs the very same command line, whatever changed in the checkout.
        (self.layout.pids / f"{component}.argv").write_text(json.dumps(argv))
        self.launch(component, argv)

    def argv_of(self, component: str) -> list[str]:
        try:
            argv = json.loads((self.layout.pids / f"{component}.argv").read_text())
        except (OSError, ValueError) as e:
            raise ClusterError(
                f"{component}'s command line was not recorded ({e}); `make cluster-down cluster-up` once"
            ) from e
        return [str(a) for a in argv]

    def launch(self, component: str, argv: list[str]) -> None:
        env = {
            **os.environ,
            CLUSTER_DIR_ENV: str(self.layout.root),
            "PATH": f"{self.layout.bin}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        }
        log = open(self.layout.logs / f"{component}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.layout.root,
        )
        (self.layout.pids / f"{component}.pid").write_text(str(proc.pid))
        time.sleep(0.3)
        if proc.poll() is not None:
            raise ClusterError(
                f"{component} exited at once (status {proc.returncode}); "
                f"see {self.layout.logs / component}.log"
            )

    def wait_for(self, what: str, check: object, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for component in COMPONENTS:
                pid = self.pid_of(component)
                if pid and not alive(pid):
                    raise ClusterError(
                        f"{component} died while waiting for {what}; see {self.layout.logs / component}.log"
                    )
            if check():
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.layout.logs}")

    def kubectl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.layout.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=check,
        )

    # ---- readiness probes -----------------------------------------------------------------------

    def apiserver_ready(self) -> bool:
        pki = self.layout.pki
        if not (pki / "admin.crt").exists():
            return False
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        try:
            with urllib.request.urlopen("https://127.0.0.1:6443/readyz", context=ctx, timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def node_ready(self, heartbeat_after: float | None = None) -> bool:
        out = self.kubectl(
            "get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')]}"
        )
        try:
            ready = json.loads(out.stdout)
        except ValueError:
            return False
        if ready.get("status") != "True":
            return False
        if heartbeat_after is None:
            return True
        # Whole seconds: a heartbeat in the same second as the restart counts.
        beat = datetime.fromisoformat(str(ready.get("lastHeartbeatTime", "")).replace("Z", "+00:00"))
        return beat.timestamp() >= int(heartbeat_after)

    def default_service_account_exists(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default").returncode == 0

    # ---- configuration --------------------------------------------------------------------------

    def write_tool_links(self) -> None:
        """kube-proxy, the kubelet and the CNI plugins all call plain `iptables`; pin them to nft."""
        for name in (
            "iptables",
            "iptables-save",
            "iptables-restore",
            "ip6tables",
            "ip6tables-save",
            "ip6tables-restore",
        ):
            link = self.layout.bin / name
            link.unlink(missing_ok=True)
            link.symlink_to(shutil.which(name.replace("tables", "tables-nft", 1)) or "")
        kubectl = self.layout.bin / "kubectl"
        kubectl.unlink(missing_ok=True)
        kubectl.symlink_to(self.bin_dir / "kubectl")

    def write_pki(self) -> None:
        pki = ClusterPKI(self.layout.pki)
        pki.ensure_ca()
        # The serving certificate names the node IP, which can change between machines.
        stale = self.layout.pki / "apiserver.node-ip"
        if not stale.exists() or stale.read_text() != self.node_ip:
            for stem in ("apiserver", "kubelet-serving"):
                (self.layout.pki / f"{stem}.crt").unlink(missing_ok=True)
            stale.write_text(self.node_ip)
        pki.issue(
            "apiserver",
            "kube-apiserver",
            client=False,
            server_names=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
            ),
            server_ips=("127.0.0.1", self.node_ip, SERVICE_API_IP),
        )
        pki.issue(
            "kubelet-serving",
            f"system:node:{NODE_NAME}",
            ("system:nodes",),
            client=False,
            server_names=(NODE_NAME, "localhost"),
            server_ips=("127.0.0.1", self.node_ip),
        )
        pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client")
        pki.ensure_service_account_keys()
        identities = {
            "admin": ("vmrole-admin", ("system:masters",)),
            "kube-controller-manager": ("system:kube-controller-manager", ()),
            "kube-scheduler": ("system:kube-scheduler", ()),
            "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
            "kube-proxy": ("system:kube-proxy", ()),
        }
        kubeconfigs = self.layout.root / "kubeconfigs"
        kubeconfigs.mkdir(exist_ok=True)
        for stem, (cn, orgs) in identities.items():
            cert, key = pki.issue(stem, cn, orgs)
            server = f"https://{self.node_ip if stem in ('kubelet', 'kube-proxy') else '127.0.0.1'}:6443"
            write_kubeconfig(kubeconfigs / f"{stem}.kubeconfig", server, pki.ca_cert_path, cert, key, cn)
        shutil.copy(kubeconfigs / "admin.kubeconfig", self.layout.kubeconfig)

    def kubeconfig_of(self, component: str) -> str:
        return str(self.layout.root / "kubeconfigs" / f"{component}.kubeconfig")

    def etcd_args(self) -> list[str]:
        return [
            "--name",
            "vmrole",
            "--data-dir",
            str(self.layout.etcd_data),
            "--listen-client-urls",
            "http://127.0.0.1:2379",
            "--advertise-client-urls",
            "http://127.0.0.1:2379",
            "--listen-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-cluster",
            "vmrole=http://127.0.0.1:2380",
            "--listen-metrics-urls",
            "http://127.0.0.1:2381",
            "--log-level",
            "warn",
            "--unsafe-no-fsync",
            "--quota-backend-bytes",
            str(4 * 1024**3),
        ]

    def apiserver_args(self) -> list[str]:
        pki = self.layout.pki
        return [
            "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=0.0.0.0",
            "--secure-port=6443",
            f"--advertise-address={self.node_ip}",
            f"--tls-cert-file={pki}/apiserver.crt",
            f"--tls-private-key-file={pki}/apiserver.key",
            f"--client-ca-file={pki}/ca.crt",
            f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--audit-policy-file={self.write_audit_policy()}",
            f"--audit-log-path={self.layout.logs}/audit.log",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def write_audit_policy(self) -> Path:
        """Writes only, at Metadata level: enough to count what a client changed (the benchmarks'
        "API writes" and the exactly-once checks), small enough to leave on."""
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
                {"level": "None"},
            ],
        }
        path = self.layout.config / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def controller_manager_args(self) -> list[str]:
        kc = self.kubeconfig_of("kube-controller-manager")
        pki = self.layout.pki
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            f"--service-account-private-key-file={pki}/sa.key",
            f"--root-ca-file={pki}/ca.crt",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *CONTROL_PLANE_CLIENT_RATE,
            "--v=1",
        ]

    def scheduler_args(self) -> list[str]:
        kc = self.kubeconfig_of("kube-scheduler")
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            *CONTROL_PLANE_CLIENT_RATE,
            "--v=1",
        ]

    def write_containerd_config(self) -> Path:
        c = self.layout.containerd
        (self.layout.cni / "net.d").mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": "vmrole",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": cleanup.CNI_BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.layout.cni / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.layout.cni / "net.d" / "10-vmrole.conflist").write_text(json.dumps(conflist, indent=2))
        config = f"""version = 2
root = "{c}/root"
state = "{c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.layout.containerd_socket}"
[ttrpc]
  address = "{c}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  # This VM withholds CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj below containerd's own
  # (the sandbox asks for -998); clamp instead of failing every pod.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{self.layout.runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.layout.cni}/net.d"
"""
        c.mkdir(parents=True, exist_ok=True)
        path = self.layout.config / "containerd.toml"
        path.write_text(config)
        return path

    def ctr(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args],
            input=stdin,
            capture_output=True,
            check=False,
        )

    def import_sandbox_image(self) -> None:
        from images import build_image_archive

        archive = build_image_archive(
            SANDBOX_IMAGE,
            files={"pause": (self.bin_dir / "pause").read_bytes()},
            executables={"pause"},
            entrypoint=["/pause"],
            user="65535:65535",
        )
        result = self.ctr("images", "import", "-", stdin=archive)
        if result.returncode != 0:
            raise ClusterError(f"importing the pause image failed: {result.stderr.decode().strip()}")

    def kubelet_args(self) -> list[str]:
        pki = self.layout.pki
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {
                "x509": {"clientCAFile": str(pki / "ca.crt")},
                "webhook": {"enabled": True},
                "anonymous": {"enabled": False},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.layout.containerd_socket}",
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            # The node can never pull an image again, so image GC must never delete one.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "200Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            # emptyDir usage is measured this often (default 1m): an instance past its disk's
            # sizeLimit is evicted within seconds, not minutes, so the tests of it stay short.
            "volumeStatsAggPeriod": "10s",
            "serializeImagePulls": False,
            "clusterDomain": "cluster.local",
            "clusterDNS": [coredns.CLUSTER_DNS_IP],
            "resolvConf": "/etc/resolv.conf",
            "maxPods": 250,
            "shutdownGracePeriod": "0s",
        }
        path = self.layout.config / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        return [
            f"--config={path}",
            f"--kubeconfig={self.kubeconfig_of('kubelet')}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.node_ip}",
            f"--root-dir={self.layout.kubelet}",
            f"--cert-dir={self.layout.kubelet}/pki",
            "--v=1",
        ]

    def write_kube_proxy_config(self) -> Path:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": self.kubeconfig_of("kube-proxy")},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # Zeros keep kube-proxy from writing conntrack sysctls the VM may not allow.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
        }
        path = self.layout.config / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def write_env(self) -> None:
        self.layout.env_file.write_text(
            "# Generated by hack/cluster.py: the server's kubectl first on PATH, this cluster selected.\n"
            f"export KUBECONFIG={self.layout.kubeconfig}\n"
            f"export PATH={self.bin_dir}:$PATH\n"
            f"export VMROLE_CLUSTER=local\n"
            f"export VMROLE_CONTAINERD_ADDRESS={self.layout.containerd_socket}\n"
        )


def _http_ok(url: str, insecure: bool = False) -> bool:
    """A 200 from a component's health endpoint; the controller-manager and scheduler serve theirs
    with a self-signed certificate, and /healthz needs no client identity on any of them."""
    context = ssl._create_unverified_context() if insecure else None
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False
