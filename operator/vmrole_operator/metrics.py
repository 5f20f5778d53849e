"""Prometheus metrics of the operator, served at `/metrics` (prometheus_client, default registry).

The handlers call this small API; nothing here talks to Kubernetes. Series:

  vmrole_reconciles_total{namespace,role,result}        reconciles of one role, succeeded or failed
  vmrole_reconcile_duration_seconds{result}             histogram; no role label, to bound its series
  vmrole_actions_total{action,result}                   reimage / reboot / heal, counted once per outcome
  vmrole_instances{namespace,role,state}                instances per state (the SEMANTICS vocabulary)

Every action/result pair and every state of a known role is exported from the start (as 0), so a
rate() or an alert on a series that has not happened yet still has something to read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Final, Literal, get_args

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from .state.instance_state import InstanceState

Action = Literal["reimage", "reboot", "heal", "rotation", "withdrawn"]
ActionResult = Literal["succeeded", "failed", "refused"]
ReconcileResult = Literal["succeeded", "failed"]

# status.instances[].state, the SEMANTICS.md vocabulary.
INSTANCE_STATES: Final = tuple(state.value for state in InstanceState)

RECONCILES: Final = Counter(
    "vmrole_reconciles",
    "Reconciles of a VMRole (children, image pin, status), by outcome.",
    ["namespace", "role", "result"],
)
RECONCILE_SECONDS: Final = Histogram(
    "vmrole_reconcile_duration_seconds",
    "Wall time of one reconcile of a VMRole.",
    ["result"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ACTIONS: Final = Counter(
    "vmrole_actions",
    "Reimages, reboots and heals carried out (succeeded) or not (failed, refused), counted once each.",
    ["action", "result"],
)
INSTANCES: Final = Gauge(
    "vmrole_instances",
    "Instances of a VMRole in each state of status.instances[].state.",
    ["namespace", "role", "state"],
)

INSTANCE_READY: Final = Gauge(
    "vmrole_instance_ready",
    "1 while the named instance (web_IN_0) is in rotation, else 0.",
    ["namespace", "role", "instance"],
)

for _action in get_args(Action):
    for _result in get_args(ActionResult):
        ACTIONS.labels(action=_action, result=_result)
for _result in get_args(ReconcileResult):
    RECONCILE_SECONDS.labels(result=_result)

# States a role reported outside the vocabulary, to remove their series once they are gone.
_extra_states: dict[tuple[str, str], set[str]] = {}
_instance_names: dict[tuple[str, str], set[str]] = {}
_roles: set[tuple[str, str]] = set()
_lock = threading.Lock()  # handlers run in kopf's thread pool


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> None:
    """Serves the default registry on http://addr:port/metrics from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)


def observe_reconcile(role_namespace: str, role_name: str, seconds: float, result: ReconcileResult) -> None:
    with _lock:
        _roles.add((role_namespace, role_name))
        RECONCILES.labels(namespace=role_namespace, role=role_name, result=result).inc()
    RECONCILE_SECONDS.labels(result=result).observe(seconds)


@contextmanager
def timed_reconcile(role_namespace: str, role_name: str) -> Iterator[None]:
    """Times the block; an exception makes it a failed reconcile and is re-raised."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        observe_reconcile(role_namespace, role_name, time.monotonic() - start, "failed")
        raise
    observe_reconcile(role_namespace, role_name, time.monotonic() - start, "succeeded")


def count_action(action: Action, result: ActionResult) -> None:
    """Call once the outcome is known: after the deletion/restart went through, or was given up."""
    ACTIONS.labels(action=action, result=result).inc()


def set_instance_states(namespace: str, role: str, counts: Mapping[str, int]) -> None:
    """The role's current instances per state; states not in `counts` are 0."""
    with _lock:
        _roles.add((namespace, role))
        for state in INSTANCE_STATES:
            INSTANCES.labels(namespace=namespace, role=role, state=state).set(counts.get(state, 0))
        extra = {s for s in counts if s not in INSTANCE_STATES}
        for gone in _extra_states.get((namespace, role), set()) - extra:
            INSTANCES.remove(namespace, role, gone)
        for state in extra:
            INSTANCES.labels(namespace=namespace, role=role, state=state).set(counts[state])
        _extra_states[(namespace, role)] = extra


def set_instances_ready(namespace: str, role: str, ready: Mapping[str, bool]) -> None:
    """Instance name -> in rotation; names no longer listed are dropped."""
    with _lock:
        _roles.add((namespace, role))
        for gone in _instance_names.get((namespace, role), set()) - set(ready):
            _remove_if_present(INSTANCE_READY, namespace, role, gone)
        for name, is_ready in ready.items():
            INSTANCE_READY.labels(namespace=namespace, role=role, instance=name).set(1 if is_ready else 0)
        _instance_names[(namespace, role)] = set(ready)


def forget_role(namespace: str, role: str) -> None:
    """Drops every series of a deleted role, so a scrape never reports instances of a role that is gone."""
    with _lock:
        if (namespace, role) not in _roles:
            return
        _roles.discard((namespace, role))
        for state in (*INSTANCE_STATES, *_extra_states.pop((namespace, role), set())):
            _remove_if_present(INSTANCES, namespace, role, state)
        for result in get_args(ReconcileResult):
            _remove_if_present(RECONCILES, namespace, role, result)
        for name in _instance_names.pop((namespace, role), set()):
            _remove_if_present(INSTANCE_READY, namespace, role, name)


def _remove_if_present(metric: Counter | Gauge, *labels: str) -> None:
    with suppress(KeyError):
        metric.remove(*labels)
