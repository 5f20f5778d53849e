"""Auto-start decided by the kubelet: rotation without the operator, and every check after a restart."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from types import TracebackType
from typing import Any

import pytest

from tests.support.operator_process import OperatorProcess

from .conftest import kubectl
from .incluster import InClusterOperator
from .kube import Kube
from .roles import create_role, get_role, instances, role_manifest, wait_available
from .traffic import EndpointSampler

pytestmark = pytest.mark.usefixtures("operator")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    """The main container's status (the kubelet lists containers by name: check-* come first)."""
    return dict(next(s for s in pod["status"]["containerStatuses"] if s["name"] == "role"))


def _main_started_at(pod: dict[str, Any]) -> str:
    return str(_main(pod)["state"]["running"]["startedAt"])


def test_a_new_instance_enters_rotation_with_the_operator_stopped(
    kube: Kube, namespace: str, operator: OperatorProcess | InClusterOperator
) -> None:
    create_role(kube, namespace, role_manifest(env=[{"name": "START_DELAY", "value": "6"}]))
    wait_available(kube, namespace, "web", ready=1)
    old = instances(kube, namespace, "web")[0]
    operator.stop()
    try:
        with EndpointSampler(kube, namespace, "web") as sampler:
            kubectl("delete", "pod", "-n", namespace, old["metadata"]["name"], "--wait=false")
            replacement = kube.wait_for(
                lambda: [
                    p
                    for p in instances(kube, namespace, "web")
                    if p["metadata"]["uid"] != old["metadata"]["uid"] and p["status"].get("podIP")
                ],
                60,
                "the Deployment's replacement",
            )[0]
            ip = replacement["status"]["podIP"]
            kube.wait_for(
                lambda: kube.endpoint_states(namespace, "web").get(ip), 60, "replacement in rotation"
            )
        pod = kube.pod(namespace, replacement["metadata"]["name"])
        started = _epoch(_main_started_at(pod))
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        became_ready = _epoch(ready["lastTransitionTime"])
        # Held out while START_DELAY ran (whole-second timestamps: 6 s can read as 5).
        assert became_ready - started >= 5, (started, became_ready)
        # Listed first as a not-ready endpoint, then ready: nobody but the kubelet decided.
        states = [s.get(ip) for _, s in sampler.samples if ip in s]
        assert states[0] == (False, False), states
        assert states[-1] == (True, False), states
    finally:
        operator.start()
    # The operator, back, adopts the instance as it is: nothing replaced, status in step.
    wait_available(kube, namespace, "web", ready=1)
    expected = [("web_IN_0", replacement["metadata"]["name"])]

    def entries() -> list[tuple[str, str]]:
        return [(i["name"], i["pod"]) for i in get_role(kube, namespace, "web")["status"]["instances"]]

    kube.wait_for(lambda: entries() == expected, 30, f"status naming {expected}")


class PortWatch:
    """When each TCP port of `ip` accepts connections, sampled every 0.1 s from the test host."""

    def __init__(self, ip: str, ports: tuple[int, ...]) -> None:
        self.ip, self.ports = ip, ports
        self.samples: list[tuple[float, dict[int, bool]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, port: int) -> bool:
        try:
            with socket.create_connection((self.ip, port), timeout=0.2):
                return True
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), {port: self._open(port) for port in self.ports}))
            self._stop.wait(0.1)

    def first_open_after(self, port: int, after: float) -> float | None:
        return next((t for t, up in self.samples if t > after and up[port]), None)

    def last_closed_after(self, port: int, after: float) -> float | None:
        closed = [t for t, up in self.samples if t > after and not up[port]]
        return closed[-1] if closed else None

    def __enter__(self) -> PortWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)


# Serves /www on 8080 at once and on 9090 only LATE seconds later, every run; exits on SIGTERM.
LATE_SECOND_PORT = (
    "trap 'exit 0' TERM; httpd -p 8080 -h /www; sleep \"$LATE\" & wait $!; httpd -f -p 9090 -h /www & wait $!"
)


def test_a_restart_holds_the_instance_out_until_a_later_check_passes_too(kube: Kube, namespace: str) -> None:
    late_s = 6
    manifest = role_manifest(
        command=["/bin/sh", "-c", LATE_SECOND_PORT],
        env=[{"name": "LATE", "value": str(late_s)}],
        autoStart=[
            {"name": "http", "httpGet": {"port": 8080, "path": "/healthz"}},
            {"name": "admin", "tcpSocket": {"port": 9090}},
        ],
    )
    create_role(kube, namespace, manifest)
    wait_available(kube, namespace, "web", ready=1, timeout=120)
    pod = instances(kube, namespace, "web")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["role", "check-admin"]

    with EndpointSampler(kube, namespace, "web") as sampler, PortWatch(ip, (8080, 9090)) as ports:
        killed = time.monotonic()
        # The exec may die with the container it killed: its exit code says nothing.
        kubectl("exec", "-n", namespace, name, "-c", "role", "--", "kill", "1", check=False)
        kube.wait_for(
            lambda: _main(kube.pod(namespace, name))["restartCount"] >= 1, 60, "main container restarted"
        )
        kube.wait_for(lambda: kube.endpoint_states(namespace, "web").get(ip), 60, "back in rotation")
        time.sleep(0.5)

    up_8080 = ports.first_open_after(8080, ports.last_closed_after(8080, killed) or killed)
    down_9090 = ports.last_closed_after(9090, killed)
    assert up_8080 is not None, ports.samples[-20:]
    assert down_9090 is not None, ports.samples[-20:]
    # The first check's port came back well before the later one ...
    assert down_9090 - up_8080 >= late_s - 2, (up_8080, down_9090)
    # ... and yet the instance was not a ready endpoint at any moment while 9090 was still closed.
    ready_while_down = [
        t for t, states in sampler.samples if killed < t < down_9090 and states.get(ip) == (True, False)
    ]
    left = [t for t, states in sampler.samples if t > killed and states.get(ip) != (True, False)]
    assert left, "the instance never left rotation"
    assert not [t for t in ready_while_down if t > left[0]], (left[0], ready_while_down, down_9090)
    state = next(i for i in get_role(kube, namespace, "web")["status"]["instances"] if i["pod"] == name)
    assert state["restarts"] >= 1
