"""4. Scale on kwok: many VMRoles of 1 instance on fake nodes, the operator started cold, then restarted.

kwok (built by hack/build-kwok.sh) runs as a host process against the cluster's apiserver and manages
only the nodes this run creates (annotation selector), never the real node. Fake pods have no network,
so the roles have no auto-start checks (kwok reports the pods Ready) and a digest image (no resolver
pod). The roles are created while the operator is stopped; then it is started and the clock runs until
every role is Available. The operator's writes are counted from the apiserver's audit log (its user
agents, in this run's namespace), its peak RSS is VmHWM.
Then it is restarted with nothing changed: time to settle and writes (the goal is 0).
Optionally the floor: the same number of plain 1-replica Deployments created at once, until all are
available (what the cluster itself takes to run that many Deployments on these fake nodes).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException
from tests.support.operator_process import OperatorProcess

from .common import (
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    AuditLog,
    CpuMeter,
    Kube,
    RssSampler,
    bench_operator,
    breakdown,
    control_plane_pids,
    operator_writes,
    proc_cpu_seconds,
    proc_status_kib,
    ratio,
    stop_bench_operator,
    wait_for,
    web_digest_image,
)
from .workloads import KWOK_TAINT, kwok_role_manifest

KWOK_STAGES = REPO / "bench" / "kwok" / "stages.yaml"
KWOK_SELECTOR_KEY = "vmrole.dev/bench-kwok"
KWOK_POD_CIDR = "10.240.0.0/16"  # fake pod IPs: nothing is ever sent to them (no auto-start checks)


def build_kwok() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-kwok.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"hack/build-kwok.sh failed: {out.stderr.strip()[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


class Kwok:
    """A kwok process managing only this run's fake nodes, and the nodes themselves."""

    def __init__(self, kube: Kube, run: str, nodes: int, log_path: Path) -> None:
        self.kube = kube
        self.run = run
        self.node_names = [f"bench-kwok-{run}-{i}" for i in range(nodes)]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def node_selector(self) -> dict[str, str]:
        return {KWOK_SELECTOR_KEY: self.run}

    def __enter__(self) -> Kwok:
        binary = build_kwok()
        kubeconfig = str(Path(__import__("os").environ["KUBECONFIG"]))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(binary),
                    f"--kubeconfig={kubeconfig}",
                    f"--config={KWOK_STAGES}",
                    f"--manage-nodes-with-annotation-selector={KWOK_SELECTOR_KEY}={self.run}",
                    f"--cidr={KWOK_POD_CIDR}",
                    "--node-ip=192.0.2.250",
                ],
                stdout=log,
                stderr=log,
            )
        for name in self.node_names:
            self.kube.core.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {KWOK_SELECTOR_KEY: self.run, "kwok.x-k8s.io/node": "fake"},
                        "labels": {
                            KWOK_SELECTOR_KEY: self.run,
                            "type": "kwok",
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                        },
                    },
                    # Tainted so that no real pod (a test's, the cluster's) ever lands on a node
                    # nothing runs on; the bench roles tolerate it (workloads.KWOK_TOLERATION).
                    "spec": {"taints": [KWOK_TAINT]},
                }
            )
        wait_for(self._nodes_ready, 60, "kwok nodes Ready", interval=0.5)
        return self

    def _nodes_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"kwok exited with {self.proc.returncode}; see {self.log_path}")
        for name in self.node_names:
            node = self.kube.core.read_node(name)
            conds = {c.type: c.status for c in node.status.conditions or []}
            if conds.get("Ready") != "True":
                return False
        return True

    def __exit__(self, *_: object) -> None:
        for name in self.node_names:
            with contextlib.suppress(ApiException):
                self.kube.core.delete_node(name)
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class AvailabilityWatch:
    """Counts objects of one kind in a namespace whose availability predicate holds, by watch."""

    def __init__(self, kube: Kube, namespace: str, kind: str, target: int = 0) -> None:
        self.kube = kube
        self.namespace = namespace
        self.kind = kind  # "vmroles", "deployments" or "pods"
        self.target = target
        self.reached_at: float | None = None  # monotonic time the count first reached `target`
        self.available: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{kind}")

    def _list(self, **kw: Any) -> Any:
        if self.kind == "vmroles":
            return self.kube.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, **kw
            )
        if self.kind == "pods":
            return self.kube.core.list_namespaced_pod(self.namespace, **kw)
        return self.kube.apps.list_namespaced_deployment(self.namespace, **kw)

    def _is_available(self, obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        if self.kind == "pods":
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                return False
            return any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
        if self.kind == "vmroles":
            return any(
                c.get("type") == "Available" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
        wanted = (obj.get("spec") or {}).get("replicas", 1)
        return bool(
            status.get("availableReplicas", 0) >= wanted and status.get("updatedReplicas", 0) >= wanted
        )

    def _update(self, obj: dict[str, Any], deleted: bool = False) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if not deleted and self._is_available(obj):
                self.available.add(name)
                if self.target and self.reached_at is None and len(self.available) >= self.target:
                    self.reached_at = time.monotonic()
            else:
                self.available.discard(name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listing = json.loads(self._list(_preload_content=False).data)
                for obj in listing["items"]:
                    self._update(obj)
                rv = listing["metadata"]["resourceVersion"]
                # Raw events (no model deserialisation): cheap on a 2-core machine at 10,000 objects.
                response = self._list(
                    watch=True,
                    resource_version=rv,
                    timeout_seconds=120,
                    _preload_content=False,
                    allow_watch_bookmarks=False,
                )
                for line in response:
                    if self._stop.is_set():
                        response.close()
                        return
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        break
                    self._update(event["object"], deleted=event["type"] == "DELETED")
            except Exception:
                time.sleep(0.5)

    def count(self) -> int:
        with self._lock:
            return len(self.available)

    def __enter__(self) -> AvailabilityWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


def _create_all(items: list[Any], create: Any, threads: int = 16) -> float:
    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, items))
    return time.monotonic() - t0


def _wait_count(watcher: AvailabilityWatch, n: int, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    deadline = t0 + timeout
    while watcher.count() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {watcher.count()} of {n} available after {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic()


def _resumed(operator: OperatorProcess, offset: int) -> int:
    """Roles the operator has reconciled since `offset` (each once at a start)."""
    return len(set(operator.reconciled(offset)))


def _wait_quiet(pid: int, quiet_s: float, timeout: float, threshold_cpu_s: float = 0.03) -> float:
    """Monotonic time when the process's CPU use first stayed below `threshold_cpu_s` per second for
    `quiet_s` seconds (the returned time is the start of that quiet stretch)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    last = proc_cpu_seconds(pid) or 0.0
    while time.monotonic() < deadline:
        time.sleep(1)
        now_cpu = proc_cpu_seconds(pid) or 0.0
        busy = now_cpu - last > threshold_cpu_s
        last = now_cpu
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic() - 1
        elif time.monotonic() - quiet_since >= quiet_s:
            return quiet_since
    raise TimeoutError("the operator never went quiet")


def run_operator(
    kube: Kube,
    run: str,
    kwok: Kwok,
    roles: int,
    timeout: float,
    logs: Path,
    quiet_s: float,
    restart: bool,
    attempt: int = 0,
) -> dict[str, Any]:
    """`roles` roles created while the operator is stopped, then a cold start until all are Available;
    with `restart`, then a restart with nothing changed."""
    namespace = kube.create_namespace(f"bench-{run}s-{roles}-{attempt}")
    image = web_digest_image()
    audit = AuditLog()
    pids = control_plane_pids()
    result: dict[str, Any] = {"roles": roles, "namespace": namespace, "fake_nodes": len(kwok.node_names)}
    operator = bench_operator(
        logs / f"operator-scale-{run}-{roles}-{attempt}.log", f"{run}s", f"bench-{run}s-*"
    )
    try:
        manifests = [kwok_role_manifest(f"r{i:05d}", image, kwok.node_selector) for i in range(roles)]
        result["create_roles_s"] = round(_create_all(manifests, lambda m: kube.create_role(namespace, m)), 2)

        # --- cold start ---
        with (
            AvailabilityWatch(kube, namespace, "vmroles") as watcher,
            AvailabilityWatch(kube, namespace, "pods", target=roles) as pods_ready,
        ):
            mark = audit.mark()
            meter = CpuMeter(pids)
            meter.start()
            t0 = time.monotonic()
            operator.start()
            assert operator.proc is not None
            pid = operator.proc.pid
            meter.pids["operator"] = pid
            meter.before["operator"] = 0.0  # a new process: all of its CPU is this phase's
            if kwok.proc is not None:
                meter.pids["kwok"] = kwok.proc.pid
                meter.before["kwok"] = proc_cpu_seconds(kwok.proc.pid) or 0.0
            sampler = RssSampler(pid, 0.5, extra=lambda: float(watcher.count())).start()
            t_all = _wait_count(watcher, roles, timeout, "roles Available")
            result["seconds_to_available"] = round(t_all - t0, 2)
            # The part the cluster sets: every instance pod created, scheduled and Running (kwok's Ready).
            if pods_ready.reached_at is not None:
                result["seconds_to_all_pods_ready"] = round(pods_ready.reached_at - t0, 2)
            result["writes_to_available"] = len(operator_writes(audit.writes(mark, namespace)))
            t_quiet = _wait_quiet(pid, quiet_s, timeout)
            result["seconds_to_quiet"] = round(t_quiet - t0, 2)
            result["cpu"] = meter.stop()
            result["cpu_s_per_role"] = per_role(result["cpu"], roles)
            samples = sampler.stop()
            hwm = proc_status_kib(pid, "VmHWM")
            result["peak_rss_mib"] = round(hwm / 1024, 1) if hwm else None
            result["rss_samples"] = samples  # (seconds since start, RSS MiB, roles Available)
            time.sleep(2)  # audit events are written at response completion
            writes = operator_writes(audit.writes(mark, namespace))
            result["writes"] = len(writes)
            result["writes_by_kind"] = breakdown(writes)
            result["writes_per_role"] = round(len(writes) / roles, 2)

        if restart:
            result.update(_restart(operator, audit, namespace, roles, timeout, quiet_s))
    finally:
        stop_bench_operator(operator)
        kube.delete_namespace(namespace)
    return result


def per_role(cpu: dict[str, Any], roles: int) -> dict[str, float]:
    """CPU seconds per role of each measured process (the operator, the API server, ...)."""
    return {name: round(seconds / roles, 4) for name, seconds in (cpu.get("cpu_s") or {}).items()}


def _restart(
    operator: OperatorProcess, audit: AuditLog, namespace: str, roles: int, timeout: float, quiet_s: float
) -> dict[str, Any]:
    """The operator restarted with nothing changed: until every role is handled and it is quiet."""
    operator.stop()
    mark = audit.mark()
    offset = operator.log_size()
    t0 = time.monotonic()
    operator.start()
    assert operator.proc is not None
    pid = operator.proc.pid
    wait_for(lambda: _resumed(operator, offset) >= roles, timeout, "every role resumed", interval=0.5)
    t_resumed = time.monotonic()
    t_quiet = _wait_quiet(pid, quiet_s, timeout)
    time.sleep(2)
    writes = operator_writes(audit.writes(mark, namespace))
    hwm = proc_status_kib(pid, "VmHWM")
    return {
        "resync_seconds_all_resumed": round(t_resumed - t0, 2),
        "resync_seconds": round(max(t_quiet, t_resumed) - t0, 2),
        "resync_writes": len(writes),
        "resync_writes_by_kind": breakdown(writes),
        "resync_peak_rss_mib": round(hwm / 1024, 1) if hwm else None,
        "resync_cpu_s": proc_cpu_seconds(pid),
    }


def run_size(
    kube: Kube,
    run: str,
    kwok: Kwok,
    roles: int,
    timeout: float,
    logs: Path,
    floor: bool,
    quiet_s: float,
    pairs: int,
) -> dict[str, Any]:
    """`pairs` alternating (operator, floor) pairs at one size, each from an empty cluster; the
    first operator run is also restarted. One machine, one after the other: a pair shares the
    machine's mood, so the ratio within a pair is what to compare."""
    operator_runs: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    image = web_digest_image()
    for attempt in range(pairs):
        operator_runs.append(
            run_operator(
                kube, run, kwok, roles, timeout, logs, quiet_s, restart=attempt == 0, attempt=attempt
            )
        )
        wait_namespace_gone(kube, operator_runs[-1]["namespace"], timeout)
        if floor:
            floors.append(run_floor(kube, run, kwok, roles, image, timeout, attempt))
            wait_namespace_gone(kube, floors[-1]["namespace"], timeout)
    first = operator_runs[0]
    seconds = [r["seconds_to_available"] for r in operator_runs]
    floor_seconds = [f["seconds_to_available"] for f in floors]
    pair_ratios = [ratio(o, f) for o, f in zip(seconds, floor_seconds, strict=False)]
    result = {
        **first,  # the restart, writes and RSS samples of the first run
        "pairs": pairs,
        "seconds_to_available": round(statistics.median(seconds), 2),
        "seconds_to_available_runs": seconds,
        "peak_rss_mib": max((r["peak_rss_mib"] or 0.0) for r in operator_runs) or None,
        "peak_rss_mib_runs": [r["peak_rss_mib"] for r in operator_runs],
        "cpu_s_per_role_runs": [r["cpu_s_per_role"] for r in operator_runs],
    }
    if floors:
        result["floor"] = {
            **floors[0],
            "seconds_to_available": round(statistics.median(floor_seconds), 2),
            "seconds_to_available_runs": floor_seconds,
            "cpu_s_per_role_runs": [f["cpu_s_per_role"] for f in floors],
        }
        known = [r for r in pair_ratios if r is not None]
        result["pair_ratios"] = pair_ratios
        result["ratio_median"] = round(statistics.median(known), 3) if known else None
    return result


def run_floor(
    kube: Kube, run: str, kwok: Kwok, n: int, image: str, timeout: float, attempt: int = 0
) -> dict[str, Any]:
    """n plain 1-replica Deployments (the operator's pod spec) created at once, until all available."""
    from vmrole_operator.models import parse_role
    from vmrole_operator.specs.deployment import build_deployment

    namespace = kube.create_namespace(f"bench-{run}f-{n}-{attempt}")
    try:
        bodies = []
        for i in range(n):
            role = parse_role(
                {
                    **kwok_role_manifest(f"d{i:05d}", image, kwok.node_selector),
                    "metadata": {"name": f"d{i:05d}"},
                }
            )
            bodies.append(build_deployment(role, image, 1))
        pids = control_plane_pids()
        with (
            AvailabilityWatch(kube, namespace, "deployments") as watcher,
            AvailabilityWatch(kube, namespace, "pods", target=n) as pods_ready,
        ):
            meter = CpuMeter(pids).start()
            t0 = time.monotonic()
            created = _create_all(bodies, lambda d: kube.apps.create_namespaced_deployment(namespace, d))
            t_all = _wait_count(watcher, n, timeout, "Deployments available")
            cpu = meter.stop()
            return {
                "namespace": namespace,
                "deployments": n,
                "create_s": round(created, 2),
                "seconds_to_available": round(t_all - t0, 2),
                "seconds_to_all_pods_ready": (
                    round(pods_ready.reached_at - t0, 2) if pods_ready.reached_at is not None else None
                ),
                "cpu": cpu,
                "cpu_s_per_role": per_role(cpu, n),
            }
    finally:
        kube.delete_namespace(namespace)


def wait_namespace_gone(kube: Kube, namespace: str, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        kube.delete_namespace(namespace, wait_s=timeout)


def run(
    kube: Kube,
    run_id: str,
    sizes: list[int],
    timeout: float,
    logs: Path,
    floor: bool = True,
    nodes: int = 5,
    quiet_s: float = 5,
    pairs: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Every size in turn, smallest first; `pairs` says how many (operator, floor) pairs a size gets
    (1 unless given). A size that fails ends the run: the larger ones would fail too."""
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with Kwok(kube, run_id, nodes, logs / f"kwok-{run_id}.log") as kwok:
        for size in sizes:
            try:
                count = (pairs or {}).get(size, 1)
                runs.append(run_size(kube, run_id, kwok, size, timeout, logs, floor, quiet_s, count))
            except (TimeoutError, MemoryError, RuntimeError) as e:
                skipped[str(size)] = f"{type(e).__name__}: {e}"
                break
    first = runs[0] if runs else {}
    return {
        "runs": runs,
        "not_run": skipped,
        "roles": first.get("roles"),
        "seconds_to_available": first.get("seconds_to_available"),
        "peak_rss_mib": first.get("peak_rss_mib"),
        "writes": first.get("writes"),
        "resync_writes": first.get("resync_writes"),
        "resync_seconds": first.get("resync_seconds"),
        **{f"{key}_{r['roles']}": r.get(key) for r in runs for key in SIZE_KEYS},
    }


# Keys of each size's run also given as `<key>_<roles>` in the scale section, for the targets.
SIZE_KEYS = ("seconds_to_available", "ratio_median", "peak_rss_mib", "resync_seconds", "resync_writes")


def scale_runs(scale: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per size: what latest.json's `scale_runs` holds."""
    return [
        {
            "roles": r["roles"],
            "seconds_to_available": r.get("seconds_to_available"),
            "floor_seconds": (r.get("floor") or {}).get("seconds_to_available"),
            "ratio_median": r.get("ratio_median"),
            "pairs": r.get("pairs"),
            "peak_rss_mib": r.get("peak_rss_mib"),
            "restart_settle_seconds": r.get("resync_seconds"),
            "resync_writes": r.get("resync_writes"),
            "operator_cpu_s_per_role": (r.get("cpu_s_per_role") or {}).get("operator"),
            "apiserver_cpu_s_per_role": (r.get("cpu_s_per_role") or {}).get("kube-apiserver"),
        }
        for r in scale.get("runs") or []
    ]
