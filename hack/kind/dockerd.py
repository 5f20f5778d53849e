"""The Docker engine under kind: one that already answers, or a dockerd started and stopped here.

These machines have Debian's docker.io but no init system to run it, and withhold CAP_SYS_RESOURCE
from every process, so privileged containers fail unless runc leaves that capability out
(runc_wrapper.py, registered as dockerd's default runtime). dockerd also changes the host: it turns
ip_forward on, sets the FORWARD policy to DROP, adds its iptables chains and bridges. What it found
is recorded when it starts, and `stop` puts every bit of it back and checks that nothing is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from local_cluster.host import ClusterError, alive, process_cmdlines, terminate

RUN_DIR = Path("/run/vmrole-docker")
PID_FILE = RUN_DIR / "dockerd.pid"
HOST_STATE = RUN_DIR / "host-before.json"
WRAPPER = RUN_DIR / "runc-without-sys-resource"
RUNTIME_NAME = "runc-without-sys-resource"
SOCKET = "/var/run/docker.sock"
SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
# docker's own chains (filter and nat) and the interfaces it names.
CHAIN_PREFIX = "DOCKER"
BRIDGE_PATTERN = re.compile(r"^(docker0|br-[0-9a-f]{12})$")
IPTABLES = ("iptables-nft", "iptables-legacy")


def _iptables() -> list[str]:
    """The iptables front ends in use. Merely listing with iptables-legacy creates its tables, so it is
    asked only when the kernel already has some (docker, on a host whose `iptables` is legacy)."""
    legacy = Path("/proc/net/ip_tables_names")
    in_use = legacy.exists() and legacy.read_text().strip() != ""
    return [b for b in IPTABLES if shutil.which(b) and (b != "iptables-legacy" or in_use)]


def cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("VMROLE_CACHE") or f"{xdg}/vmrole-operator")


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=timeout)


def answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return _run("docker", "info", "--format", "{{.ServerVersion}}", timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def our_pid() -> int | None:
    """The dockerd started here, while it runs."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def dockerd_pids() -> list[int]:
    return [pid for pid, argv in process_cmdlines() if argv and Path(argv[0]).name == "dockerd"]


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _forward_policy(binary: str) -> str | None:
    out = _run(binary, "-t", "filter", "-S", "FORWARD")
    if out.returncode != 0:
        return None
    first = out.stdout.splitlines()[:1]
    return first[0].split()[-1] if first and first[0].startswith("-P FORWARD") else None


def _record_host() -> dict[str, object]:
    return {
        "sysctls": {
            name: _sysctl_path(name).read_text().strip() for name in SYSCTLS if _sysctl_path(name).exists()
        },
        "forward_policy": {b: _forward_policy(b) for b in _iptables()},
        "lib_modules_existed": Path("/lib/modules").exists(),
    }


def start() -> bool:
    """Makes sure an engine answers; True when it is one started here (and so stopped by `stop`)."""
    if our_pid() is not None:
        _wait_until_it_answers()
        return True
    if answers():
        return False
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ClusterError(
            "CLUSTER=kind needs Docker: no engine answers and dockerd is missing "
            "(`CLUSTER=kind make setup` installs Debian's docker.io)"
        )
    if os.geteuid() != 0:
        raise ClusterError("starting dockerd needs root")
    others = dockerd_pids()
    if others:
        raise ClusterError(f"a dockerd (pid {others[0]}) runs but does not answer on {SOCKET}")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    # A dockerd that died without `stop` left its changes: what the host was like before it stays.
    if not HOST_STATE.exists():
        HOST_STATE.write_text(json.dumps(_record_host()))
    shutil.copy(Path(__file__).with_name("runc_wrapper.py"), WRAPPER)
    WRAPPER.chmod(0o755)
    data_root = cache_dir() / "docker"
    data_root.mkdir(parents=True, exist_ok=True)
    log_path = Path(__file__).resolve().parents[2] / ".cluster" / "logs" / "dockerd.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VMROLE_CLUSTER", "DOCKER_"))}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                dockerd,
                f"--host=unix://{SOCKET}",
                f"--data-root={data_root}",
                f"--exec-root={RUN_DIR / 'exec'}",
                f"--pidfile={PID_FILE}",
                f"--add-runtime={RUNTIME_NAME}={WRAPPER}",
                f"--default-runtime={RUNTIME_NAME}",
                "--storage-driver=overlay2",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not PID_FILE.exists() and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"dockerd exited at once (status {proc.returncode}); see {log_path}")
        time.sleep(0.2)
    _wait_until_it_answers(log_path)
    return True


def _wait_until_it_answers(log_path: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if answers():
            return
        if our_pid() is None and PID_FILE.exists():
            break
        time.sleep(0.5)
    raise ClusterError(f"dockerd does not answer `docker info`; see {log_path or 'its log'}")


def stop() -> list[str]:
    """Stops the dockerd started here and puts the host back as it was before it started; returns
    what is still left over (empty when clean). An engine not started here is left alone."""
    before = _host_before()
    if not before and our_pid() is None:
        return []
    pid = our_pid()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 45
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        terminate([pid], timeout=1)
    # Shims of containers that outlived their dockerd (a crash, a SIGKILL).
    terminate(
        [p for p, argv in process_cmdlines() if argv and "containerd-shim" in argv[0] and "moby" in argv],
        timeout=5,
    )
    _unmount_under(RUN_DIR)
    for dev in Path("/sys/class/net").iterdir():
        if BRIDGE_PATTERN.match(dev.name):
            _run("ip", "link", "delete", dev.name)
    _remove_chains()
    _restore_host(before)
    problems = leftovers() + host_differences(before)
    if not problems and RUN_DIR.exists():
        _run("rm", "-rf", "--one-file-system", str(RUN_DIR))
    return problems


def _unmount_under(path: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == str(path) or p.startswith(f"{path}/")), reverse=True):
        _run("umount", "-l", point)


def _docker_rules(binary: str, table: str) -> tuple[list[str], list[list[str]]]:
    """docker's chains in a table, and the rules elsewhere that jump to them or name its bridges."""
    saved = _run(f"{binary}-save", "-t", table)
    if saved.returncode != 0:
        return [], []
    chains = [
        line[1:].split()[0]
        for line in saved.stdout.splitlines()
        if line.startswith(":") and line[1:].startswith(CHAIN_PREFIX)
    ]
    rules = []
    for line in saved.stdout.splitlines():
        if not line.startswith("-A ") or line.split()[1].startswith(CHAIN_PREFIX):
            continue
        words = line.split()
        target = words[words.index("-j") + 1] if "-j" in words else ""
        devices = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-i", "-o")]
        if target.startswith(CHAIN_PREFIX) or any(BRIDGE_PATTERN.match(d) for d in devices):
            rules.append(words[1:])
    return chains, rules


def _remove_chains() -> None:
    for binary in _iptables():
        for table in ("filter", "nat"):
            chains, rules = _docker_rules(binary, table)
            for rule in rules:
                _run(binary, "-t", table, "-D", *rule)
            for chain in chains:
                _run(binary, "-t", table, "-F", chain)
            for chain in chains:
                _run(binary, "-t", table, "-X", chain)


def _host_before() -> dict[str, object]:
    try:
        before = json.loads(HOST_STATE.read_text())
    except (OSError, ValueError):
        return {}
    return before if isinstance(before, dict) else {}


def _restore_host(before: dict[str, object]) -> None:
    sysctls = before.get("sysctls") or {}
    assert isinstance(sysctls, dict)
    for name, value in sysctls.items():
        path = _sysctl_path(name)
        if path.exists() and path.read_text().strip() != value:
            path.write_text(value)
    policies = before.get("forward_policy") or {}
    assert isinstance(policies, dict)
    for binary, policy in policies.items():
        if policy and _forward_policy(binary) != policy:
            _run(binary, "-t", "filter", "-P", "FORWARD", policy)
    # docker makes the host side of kind's read-only /lib/modules mount when it is missing.
    modules = Path("/lib/modules")
    if before.get("lib_modules_existed") is False and modules.is_dir() and not any(modules.iterdir()):
        modules.rmdir()


def leftovers() -> list[str]:
    """What a stopped engine must not leave; empty when clean."""
    found = [f"dockerd (pid {p})" for p in dockerd_pids()]
    found += [
        f"containerd-shim (pid {p})"
        for p, argv in process_cmdlines()
        if argv and "containerd-shim" in argv[0] and "moby" in argv
    ]
    found += [f"interface {d.name}" for d in Path("/sys/class/net").iterdir() if BRIDGE_PATTERN.match(d.name)]
    for binary in _iptables():
        for table in ("filter", "nat"):
            chains, rules = _docker_rules(binary, table)
            found += [f"{binary} {table} chain {c}" for c in chains]
            found += [f"{binary} {table} rule {' '.join(r)}" for r in rules]
    return found


def host_differences(before: dict[str, object]) -> list[str]:
    """Host settings that differ from what was recorded before dockerd started."""
    found = []
    sysctls = before.get("sysctls") or {}
    assert isinstance(sysctls, dict)
    for name, value in sysctls.items():
        path = _sysctl_path(name)
        if path.exists() and path.read_text().strip() != value:
            found.append(f"{name} is {path.read_text().strip()}, was {value}")
    policies = before.get("forward_policy") or {}
    assert isinstance(policies, dict)
    for binary, policy in policies.items():
        now = _forward_policy(binary)
        if policy and now != policy:
            found.append(f"{binary} FORWARD policy is {now}, was {policy}")
    return found
