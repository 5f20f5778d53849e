"""Host facts and process handling shared by the launcher and the cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

# Marks every process the launcher starts, so a later run (or a fresh clone) recognises leftovers.
CLUSTER_DIR_ENV = "VMROLE_CLUSTER_DIR"


class ClusterError(Exception):
    """A condition the user must fix; printed as one line, exit status 1."""


def default_route_ip() -> str:
    """The address of the interface holding the default route: the node IP pods can reach."""
    out = subprocess.run(
        ["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True, check=False
    ).stdout
    words = out.split()
    if "src" in words:
        return words[words.index("src") + 1]
    raise ClusterError("cannot find the node IP: this machine has no IPv4 default route")


def port_owner(port: int, host: str = "0.0.0.0") -> str | None:
    """Returns None when the TCP port can be bound, else a description of who holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            pass
        else:
            return None
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return out.strip().split("users:")[-1] if out.strip() else "another process"


def pids_marked_for(cluster_dir: Path | None) -> Iterator[int]:
    """Processes started by a launcher: ours (cluster_dir given) or of any cluster dir that is gone."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        prefix = f"{CLUSTER_DIR_ENV}=".encode()
        marks = [e[len(prefix) :].decode() for e in environ if e.startswith(prefix)]
        if not marks:
            continue
        mark = Path(marks[0])
        if (cluster_dir is not None and mark == cluster_dir) or not mark.exists():
            yield int(entry.name)


def process_cmdlines() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if raw:
                yield int(entry.name), [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def terminate(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL whatever still lives after `timeout` seconds."""
    live = [p for p in pids if alive(p)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        live = [p for p in live if alive(p)]
        time.sleep(0.1)
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in live) and time.monotonic() < deadline:
        time.sleep(0.05)


def write_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name.replace(".", "/")
    if not path.exists():
        raise ClusterError(f"kernel setting {name} is missing ({path}); kube-proxy needs it")
    if path.read_text().strip() != value:
        path.write_text(value)
