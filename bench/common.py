"""What every benchmark shares: the API client, namespaces, statistics, the audit log, processes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO / ".cluster"
AUDIT_DIR = CLUSTER_DIR / "logs"
WEB_IMAGE = "localhost/vmrole-test/web"
GROUP, VERSION, PLURAL = "vmrole.dev", "v1alpha1", "vmroles"
ROLE_LABEL = "vmrole.dev/role"
REIMAGE_ANNOTATION = "vmrole.dev/reimage"
# The benchmark's own requests carry this user agent, so the audit log tells them from the operator's.
BENCH_USER_AGENT = "vmrole-bench/1"
# The operator's requests: the prefix the operator sets on its clients, and, until every client
# carries it, the defaults of kopf (aiohttp) and of the official client. Only requests into the
# run's own namespaces are counted, which nothing else but the operator and the benchmark writes to.
OPERATOR_AGENT_PREFIXES = ("vmrole-operator", "kopf/", "OpenAPI-Generator/")

BENCH_OPERATOR_LABEL = "vmrole.dev/e2e-operator"

T = TypeVar("T")


def bench_operator(log: Path, run: str, namespaces: str) -> Any:
    """The operator under benchmark, watching `namespaces`, naming instances of run `run` only."""
    from tests.support.operator_process import OperatorProcess

    webhook = (f"vmrole-operator-bench-{run}", f"{BENCH_OPERATOR_LABEL}={run}")
    return OperatorProcess(log, namespaces=namespaces, webhook=webhook)


def stop_bench_operator(operator: Any) -> None:
    """Stops it and removes the MutatingWebhookConfiguration it kept: the operator leaves it in
    place on purpose (failurePolicy Ignore), but a benchmark's operator never comes back."""
    operator.stop()
    kubectl("delete", "mutatingwebhookconfiguration", operator.webhook[0], "--ignore-not-found")


# ---- statistics ----------------------------------------------------------------------------------


def quantile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), for q in [0, 1]."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """median, p90, min, max and n of a list of seconds (None for each when there are none)."""
    if not samples:
        return {"n": 0, "median": None, "p90": None, "min": None, "max": None}
    return {
        "n": len(samples),
        "median": round(statistics.median(samples), 4),
        "p90": round(quantile(samples, 0.9), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# ---- cluster access --------------------------------------------------------------------------------


class Kube:
    """The official client, with the benchmark's user agent."""

    def __init__(self) -> None:
        if not os.environ.get("KUBECONFIG"):
            raise SystemExit("no KUBECONFIG: run `make bench` (or source .cluster/env first)")
        config.load_kube_config()
        self.api = client.ApiClient()
        self.api.user_agent = BENCH_USER_AGENT
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def to_dict(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))

    # -- namespaces --

    def create_namespace(self, name: str) -> str:
        # The label sends its pods to the webhook of the benchmark's own operator (`bench_operator`).
        labels = {"vmrole.dev/bench": "true", BENCH_OPERATOR_LABEL: name.split("-")[1]}
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        wait_for(lambda: self._has_default_sa(name), 60, f"ServiceAccount default in {name}")
        return name

    def _has_default_sa(self, namespace: str) -> bool:
        try:
            self.core.read_namespaced_service_account("default", namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def delete_namespace(self, name: str, wait_s: float = 0) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespace(name, propagation_policy="Background")
        if wait_s > 0:
            wait_for(lambda: not self._namespace_exists(name), wait_s, f"namespace {name} gone", interval=1)

    def _namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    # -- objects --

    def create_role(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dict(manifest))

    def get_role(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))

    def patch_role(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, dict(patch))

    def delete_role(self, namespace: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        listing = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return list(json.loads(listing.data)["items"])

    def live_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [p for p in self.pods(namespace, selector) if not p["metadata"].get("deletionTimestamp")]


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Polls `check` until it returns something truthy; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
        except (ApiException, OSError) as e:
            last_error, value = e, None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(interval)


def run_id() -> str:
    return uuid.uuid4().hex[:5]


def kubectl(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def web_digest_image(version: str = "1") -> str:
    """`localhost/vmrole-test/web@sha256:...`: the digest reference of the test image, from containerd."""
    address = os.environ.get("VMROLE_CONTAINERD_ADDRESS", str(CLUSTER_DIR / "containerd" / "containerd.sock"))
    ctr = ["ctr", "--address", address]
    if os.environ.get("VMROLE_CLUSTER") == "kind":
        # The same images on every node (hack/images.py); the control plane's containerd lists them.
        ctr = ["docker", "exec", f"{os.environ.get('KIND_CLUSTER_NAME', 'vmrole')}-control-plane", "ctr"]
    out = subprocess.run(
        [*ctr, "-n", "k8s.io", "images", "ls"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == f"{WEB_IMAGE}:{version}":
            return f"{WEB_IMAGE}@{parts[2]}"
    raise RuntimeError(f"{WEB_IMAGE}:{version} is not in containerd (run `make images`)")


# ---- the audit log: every write request, with user agent and timestamps ------------------------------


@dataclass(frozen=True)
class AuditMark:
    inode: int
    offset: int
    wall: float


@dataclass(frozen=True)
class Write:
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user_agent: str
    code: int
    received: float  # epoch seconds, the apiserver's clock (the same host's)

    @property
    def key(self) -> str:
        return self.resource + (f"/{self.subresource}" if self.subresource else "")


def _epoch(stamp: str) -> float:
    # 2026-11-22T02:53:42.540938Z -> epoch seconds (fromisoformat takes at most 6 fraction digits).
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00"))
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


class AuditLog:
    """Reads the apiserver's audit log (Metadata level, writes only) from a mark on, across a rotation."""

    def __init__(self, directory: Path = AUDIT_DIR) -> None:
        self.directory = directory
        self.path = directory / "audit.log"

    @property
    def available(self) -> bool:
        return self.path.exists()

    def mark(self) -> AuditMark:
        st = self.path.stat()
        return AuditMark(st.st_ino, st.st_size, time.time())

    def _chunks(self, mark: AuditMark) -> Iterator[bytes]:
        files = sorted(self.directory.glob("audit*.log"), key=lambda p: p.stat().st_mtime)
        for path in files:
            st = path.stat()
            if st.st_ino == mark.inode:
                start = mark.offset
            elif st.st_mtime >= mark.wall:
                start = 0  # written (or rotated) after the mark
            else:
                continue
            with open(path, "rb") as f:
                f.seek(start)
                yield f.read()

    def writes(self, mark: AuditMark, namespace_prefix: str) -> list[Write]:
        """Successful or failed write requests into namespaces starting with `namespace_prefix`."""
        needle = f'"namespace":"{namespace_prefix}'.encode()
        found: list[Write] = []
        for chunk in self._chunks(mark):
            for line in chunk.split(b"\n"):
                if needle not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                ref = event.get("objectRef") or {}
                found.append(
                    Write(
                        verb=event.get("verb", ""),
                        resource=ref.get("resource", ""),
                        subresource=ref.get("subresource", ""),
                        namespace=ref.get("namespace", ""),
                        name=ref.get("name", ""),
                        user_agent=event.get("userAgent", ""),
                        code=int((event.get("responseStatus") or {}).get("code") or 0),
                        received=_epoch(event["requestReceivedTimestamp"]),
                    )
                )
        return found


def is_operator(write: Write) -> bool:
    return write.user_agent.startswith(OPERATOR_AGENT_PREFIXES) and not write.user_agent.startswith(
        BENCH_USER_AGENT
    )


def operator_writes(writes: Sequence[Write]) -> list[Write]:
    return [w for w in writes if is_operator(w)]


def breakdown(writes: Sequence[Write]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in writes:
        counts[f"{w.verb} {w.key}"] = counts.get(f"{w.verb} {w.key}", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ---- processes -------------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (its own threads; not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def control_plane_pids() -> dict[str, int]:
    """Pids of the local cluster's components (from .cluster/pids), for CPU accounting. On kind, the
    host pids of the same components inside the control-plane node, found by that container's cgroup."""
    if os.environ.get("VMROLE_CLUSTER") == "kind":
        return _kind_control_plane_pids()
    pids: dict[str, int] = {}
    directory = CLUSTER_DIR / "pids"
    if directory.is_dir():
        for f in directory.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids[f.stem] = int(f.read_text().strip())
    return pids


KIND_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
)


def _kind_control_plane_pids() -> dict[str, int]:
    node = f"{os.environ.get('KIND_CLUSTER_NAME', 'vmrole')}-control-plane"
    inspected = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", node], capture_output=True, text=True, check=False
    )
    container_id = inspected.stdout.strip()
    pids: dict[str, int] = {}
    if inspected.returncode != 0 or not container_id:
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (entry / "comm").read_text().strip()  # at most 15 characters
            name = next((c for c in KIND_COMPONENTS if c[:15] == comm), None)
            if name and name not in pids and container_id in (entry / "cgroup").read_text():
                pids[name] = int(entry.name)
    return pids


class CpuMeter:
    """CPU seconds used by named processes between start() and stop(), and the wall time."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.before: dict[str, float] = {}
        self.t0 = 0.0

    def start(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.before = {n: v for n, p in self.pids.items() if (v := proc_cpu_seconds(p)) is not None}
        return self

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        used = {}
        for name, pid in self.pids.items():
            after = proc_cpu_seconds(pid)
            if after is not None and name in self.before:
                used[name] = round(after - self.before[name], 2)
        total = sum(used.values())
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 2),
            "cpu_s": used,
            "share_of_machine": {n: round(v / (wall * cores), 3) for n, v in used.items()} if wall else {},
            "share_of_measured_cpu": {n: round(v / total, 3) for n, v in used.items()} if total else {},
        }


@dataclass
class RssSampler:
    """Samples a process's VmRSS (MiB) every `interval` seconds, with an optional extra value per sample."""

    pid: int
    interval: float = 0.5
    extra: Callable[[], float] | None = None
    samples: list[tuple[float, float, float | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        t0 = time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                rss = proc_status_kib(self.pid, "VmRSS")
                if rss is None:
                    return
                extra = self.extra() if self.extra is not None else None
                self.samples.append((round(time.monotonic() - t0, 2), round(rss / 1024, 1), extra))
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, daemon=True, name="rss-sampler")
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float, float | None]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.samples


# ---- EndpointSlices, watched --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ready: bool
    terminating: bool


class EndpointWatcher:
    """The endpoints of one Service, kept current by a watch; waits return the event's arrival time."""

    def __init__(self, kube: Kube, namespace: str, service: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self._slices: dict[str, list[Endpoint]] = {}
        self._cond = threading.Condition()
        self._changed_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"endpoints-{service}")
        self._synced = threading.Event()

    def __enter__(self) -> EndpointWatcher:
        self._thread.start()
        if not self._synced.wait(30):
            raise TimeoutError(f"no EndpointSlice watch for {self.namespace}/{self.service}")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        selector = f"kubernetes.io/service-name={self.service}"
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                listing = self.kube.discovery.list_namespaced_endpoint_slice(
                    self.namespace, label_selector=selector
                )
                with self._cond:
                    self._slices = {s.metadata.name: self._endpoints(s) for s in listing.items}
                    self._changed_at = time.monotonic()
                    self._cond.notify_all()
                self._synced.set()
                for event in w.stream(
                    self.kube.discovery.list_namespaced_endpoint_slice,
                    self.namespace,
                    label_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    if self._stop.is_set():
                        w.stop()
                        return
                    obj = event["object"]
                    with self._cond:
                        if event["type"] == "DELETED":
                            self._slices.pop(obj.metadata.name, None)
                        else:
                            self._slices[obj.metadata.name] = self._endpoints(obj)
                        self._changed_at = time.monotonic()
                        self._cond.notify_all()
            except Exception:  # a closed or expired watch: list again
                time.sleep(0.2)

    @staticmethod
    def _endpoints(s: Any) -> list[Endpoint]:
        out = []
        for ep in s.endpoints or []:
            ref = ep.target_ref
            cond = ep.conditions
            out.append(
                Endpoint(
                    pod=ref.name if ref is not None else "",
                    ready=bool(cond and cond.ready),
                    terminating=bool(cond and cond.terminating),
                )
            )
        return out

    def snapshot(self) -> dict[str, Endpoint]:
        with self._cond:
            return {e.pod: e for eps in self._slices.values() for e in eps}

    def wait(self, predicate: Callable[[dict[str, Endpoint]], bool], timeout: float, what: str) -> float:
        """Blocks until `predicate(endpoints by pod)` holds; returns when (monotonic) that state arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                state = {e.pod: e for eps in self._slices.values() for e in eps}
                if predicate(state):
                    return self._changed_at
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(remaining)


def ready_pods(state: Mapping[str, Endpoint]) -> set[str]:
    return {pod for pod, e in state.items() if e.ready}
