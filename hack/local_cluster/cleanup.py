"""Teardown of the local cluster, also of one that crashed or whose checkout is gone.

Leaves no process, mount, CNI interface, network namespace or iptables chain behind.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .host import pids_marked_for, process_cmdlines, terminate

# The order matters: node agents first so nothing restarts pods, the datastore last.
STOP_ORDER = (
    "kube-router",
    "kube-proxy",
    "kubelet",
    "kube-scheduler",
    "kube-controller-manager",
    "containerd",
    "kube-apiserver",
    "etcd",
)
CNI_BRIDGE = "cni0"
CHAIN_PREFIXES = ("KUBE-", "CNI-")
IPTABLES = ("iptables-nft", "ip6tables-nft")
# kube-router's address sets (KUBE-SRC-*, KUBE-DST-*, and the "inet6:" ones of IPv6).
IPSET_PREFIXES = ("KUBE-", "inet6:KUBE-")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def stop_processes(cluster_dir: Path, pid_dir: Path) -> None:
    for component in STOP_ORDER:
        pid_file = pid_dir / f"{component}.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError):
                terminate([int(pid_file.read_text().strip())], timeout=15)
            pid_file.unlink(missing_ok=True)
    # Anything we started that a lost pid file no longer names, and leftovers of vanished checkouts.
    terminate(list(pids_marked_for(cluster_dir)), timeout=5)


def kill_containers(runc_root: Path, cluster_dir: Path) -> None:
    """Pod processes outlive containerd and its shims; runc knows them all."""
    if runc_root.is_dir():
        for ns_root in runc_root.iterdir():
            listing = _run("runc", "--root", str(ns_root), "list", "-q").stdout.split()
            for cid in listing:
                _run("runc", "--root", str(ns_root), "kill", "--all", cid, "KILL")
            for cid in listing:
                _run("runc", "--root", str(ns_root), "delete", "--force", cid)
    shims = [
        pid
        for pid, argv in process_cmdlines()
        if argv and argv[0].endswith("containerd-shim-runc-v2") and _shim_is_ours(argv, cluster_dir)
    ]
    terminate(shims, timeout=5)


def _shim_is_ours(argv: list[str], cluster_dir: Path) -> bool:
    if "-address" not in argv:
        return False
    address = Path(argv[argv.index("-address") + 1])
    return cluster_dir in address.parents or not address.parent.exists()


def unmount_under(paths: list[Path]) -> None:
    """Lazily unmounts every mount point below the given paths, deepest first."""
    targets: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4].replace("\\040", " ")
            if any(mount_point == str(p) or mount_point.startswith(f"{p}/") for p in paths):
                targets.append(mount_point)
    for mount_point in sorted(set(targets), key=len, reverse=True):
        _run("umount", "-l", mount_point)


def remove_network_namespaces() -> None:
    """containerd names pod namespaces cni-<uuid> under /run/netns; deleting them drops the veths."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return
    unmount_under([netns_dir / n.name for n in netns_dir.iterdir() if n.name.startswith("cni-")])
    for ns in netns_dir.iterdir():
        if ns.name.startswith("cni-"):
            with contextlib.suppress(OSError):
                ns.unlink()


def remove_cni_interfaces() -> None:
    if Path(f"/sys/class/net/{CNI_BRIDGE}").exists():
        _run("ip", "link", "delete", CNI_BRIDGE)
    # veths whose namespace is gone vanish with it; any left attached to nothing are ours.
    for dev in Path("/sys/class/net").iterdir():
        if dev.name.startswith("veth") and not (dev / "master").exists():
            _run("ip", "link", "delete", dev.name)


def remove_iptables_chains() -> None:
    """Deletes jumps into KUBE-*/CNI-* chains, then the chains, in every table and family."""
    for binary in IPTABLES:
        for table in ("nat", "filter", "mangle"):
            saved = _run(f"{binary}-save", "-t", table)
            if saved.returncode != 0:
                continue
            chains = [
                line[1:].split()[0]
                for line in saved.stdout.splitlines()
                if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)
            ]
            for line in saved.stdout.splitlines():
                if not line.startswith("-A "):
                    continue
                words = shlex.split(line)
                if words[1].startswith(CHAIN_PREFIXES):
                    continue
                if "-j" in words and words[words.index("-j") + 1].startswith(CHAIN_PREFIXES):
                    _run(binary, "-t", table, "-D", *words[1:])
            for chain in chains:
                _run(binary, "-t", table, "-F", chain)
            for chain in chains:
                _run(binary, "-t", table, "-X", chain)


def _ipsets() -> list[str]:
    if shutil.which("ipset") is None:
        return []
    names = _run("ipset", "list", "-n").stdout.split()
    return [n for n in names if n.startswith(IPSET_PREFIXES)]


def remove_ipsets() -> None:
    """After the chains: a set still named by a rule cannot be destroyed."""
    for name in _ipsets():
        _run("ipset", "destroy", name)


def kill_orphaned_pod_processes() -> None:
    """Pods of a cluster whose checkout vanished (so runc's state went with it) live on in kubepods.

    Only done while no kubelet runs, so another live cluster's pods are never touched.
    """
    if any(argv and Path(argv[0]).name == "kubelet" for _, argv in process_cmdlines()):
        return
    kubepods = Path("/sys/fs/cgroup/pids/kubepods")
    if not kubepods.is_dir():
        return
    pids = []
    for procs in kubepods.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(p) for p in procs.read_text().split()]
    terminate(pids, timeout=2)


def remove_pod_cgroups() -> None:
    """Empty kubepods cgroups would make the next kubelet inherit stale QoS state."""
    root = Path("/sys/fs/cgroup")
    for controller in root.iterdir():
        kubepods = controller / "kubepods"
        if kubepods.is_dir():
            for path in sorted(
                (p for p in kubepods.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                kubepods.rmdir()


def leftovers() -> list[str]:
    """What a torn-down cluster must not leave; empty when clean."""
    found = []
    if Path(f"/sys/class/net/{CNI_BRIDGE}").exists():
        found.append(f"interface {CNI_BRIDGE}")
    for binary in IPTABLES:
        for table in ("nat", "filter", "mangle"):
            out = _run(f"{binary}-save", "-t", table).stdout
            found += [
                f"{binary} {table} chain {line[1:].split()[0]}"
                for line in out.splitlines()
                if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)
            ]
    found += [f"ipset {name}" for name in _ipsets()]
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [f"netns {n.name}" for n in netns.iterdir() if n.name.startswith("cni-")]
    return found


def teardown(cluster_dir: Path, pid_dir: Path, runc_root: Path, state_dirs: list[Path]) -> None:
    stop_processes(cluster_dir, pid_dir)
    kill_containers(runc_root, cluster_dir)
    kill_orphaned_pod_processes()
    unmount_under(state_dirs)
    remove_network_namespaces()
    remove_cni_interfaces()
    remove_iptables_chains()
    remove_ipsets()
    remove_pod_cgroups()
    for d in state_dirs:
        if d.exists():
            _run("rm", "-rf", "--one-file-system", str(d))
    # A leftover mount whose directory was removed by hand shows up as an absolute path only.
    if os.path.isdir("/run/netns") and not any(Path("/run/netns").iterdir()):
        with contextlib.suppress(OSError):
            Path("/run/netns").rmdir()
