"""Continuous HTTP load through a ClusterIP and EndpointSlice sampling, both in background threads."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from kubernetes import watch

from .kube import Kube

AUDIT_LOG = Path(__file__).resolve().parents[2] / ".cluster" / "logs" / "audit.log"


class HttpLoad:
    """GET `url` at a fixed rate until stopped; every error or non-200 answer is a failure."""

    def __init__(self, url: str, rate_per_s: float = 25.0) -> None:
        self.url = url
        self.interval = 1.0 / rate_per_s
        self.total = 0
        self.failures: list[str] = []
        self.bodies: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.total += 1
            try:
                with urllib.request.urlopen(self.url, timeout=3) as response:
                    body = response.read().decode()
                    if response.status != 200:
                        self.failures.append(f"HTTP {response.status}")
                    self.bodies[body] += 1
            except Exception as e:
                self.failures.append(repr(e))
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> HttpLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)


class EndpointSampler:
    """Every state the Service's EndpointSlices pass through, from one watch stream: ip -> (ready,
    terminating). One consistent stream, so no short-lived state falls between two polls."""

    def __init__(self, kube: Kube, namespace: str, service: str) -> None:
        self.kube, self.namespace, self.service = kube, namespace, service
        self.samples: list[tuple[float, dict[str, tuple[bool, bool]]]] = []
        self._slices: dict[str, dict[str, tuple[bool, bool]]] = {}
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        resource_version = None
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                self.kube.discovery.list_namespaced_endpoint_slice,
                self.namespace,
                label_selector=f"kubernetes.io/service-name={self.service}",
                timeout_seconds=1,
                **({"resource_version": resource_version} if resource_version else {}),
            )
            self._started.set()
            for event in stream:
                obj = event["object"]
                resource_version = obj.metadata.resource_version
                endpoints: dict[str, tuple[bool, bool]] = {}
                for ep in obj.endpoints or []:
                    cond = ep.conditions
                    for address in ep.addresses:
                        endpoints[address] = (bool(cond and cond.ready), bool(cond and cond.terminating))
                if event["type"] == "DELETED":
                    self._slices.pop(obj.metadata.name, None)
                else:
                    self._slices[obj.metadata.name] = endpoints
                merged = {ip: st for eps in self._slices.values() for ip, st in eps.items()}
                self.samples.append((time.monotonic(), merged))
                if self._stop.is_set():
                    break

    def ready_counts(self) -> list[int]:
        return [sum(1 for ready, _ in states.values() if ready) for _, states in self.samples]

    def left_rotation_before_termination(self, ip: str) -> bool:
        """After `ip` was a ready endpoint, it first stopped being one while its pod was not yet
        terminating: dropped from the slices (taken out by label) or listed not ready (a failing
        check). A pod deleted while still serving shows up as terminating instead."""
        was_ready = False
        for _, states in self.samples:
            state = states.get(ip)
            if state == (True, False):
                was_ready = True
            elif was_ready:
                return state is None or state == (False, False)
        return False

    def __enter__(self) -> EndpointSampler:
        self._thread.start()
        self._started.wait(10)
        time.sleep(0.5)  # the initial listing arrives as ADDED events
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)


def audited_pod_deletes(namespace: str) -> Counter[str]:
    """`successful_pod_deletes`, or a skip that says why exactly-once cannot be checked here."""
    deletes = successful_pod_deletes(namespace)
    if deletes is None:
        pytest.skip(f"exactly-once is counted in the API server's audit log, and {AUDIT_LOG} does not exist")
    return deletes


def successful_pod_deletes(namespace: str) -> Counter[str] | None:
    """Pod name -> successful DELETE requests that started a pod's deletion, from the local cluster's
    audit log (None elsewhere). The kubelet's own final delete of a terminated pod is not one."""
    deletes = pod_deleters(namespace)
    return None if deletes is None else Counter(name for name, _ in deletes)


def instance_deletes(namespace: str) -> Counter[str]:
    """`audited_pod_deletes` of instance pods: without the short-lived pods that resolve a tag."""
    return Counter({n: k for n, k in audited_pod_deletes(namespace).items() if "-resolve-" not in n})


def audited_pod_deleters(namespace: str) -> list[tuple[str, str]]:
    """`pod_deleters`, or a skip that says why it cannot be read here."""
    deletes = pod_deleters(namespace)
    if deletes is None:
        pytest.skip(
            f"who deleted what is read from the API server's audit log, and {AUDIT_LOG} does not exist"
        )
    return deletes


def pod_deleters(namespace: str) -> list[tuple[str, str]] | None:
    """(pod name, user) of each successful DELETE that started a pod's deletion, in order."""
    if not AUDIT_LOG.exists():
        return None
    deletes: list[tuple[str, str]] = []
    with open(AUDIT_LOG) as f:
        for line in f:
            if '"delete"' not in line or namespace not in line:
                continue
            event: dict[str, Any] = json.loads(line)
            ref = event.get("objectRef") or {}
            code = (event.get("responseStatus") or {}).get("code")
            user = (event.get("user") or {}).get("username", "")
            if (
                event.get("verb") == "delete"
                and ref.get("resource") == "pods"
                and not ref.get("subresource")
                and ref.get("namespace") == namespace
                and code in (200, 202)
                and not user.startswith("system:node:")
            ):
                deletes.append((ref["name"], user))
    return deletes
