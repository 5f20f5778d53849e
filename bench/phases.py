"""Where the time of a trial goes, from the apiserver's audit log (write requests, with timestamps).

The audit log is at Metadata level, so it shows who wrote what and when, not the content: a pod's
scheduling is its `pods/binding` create. The end of a trial (a ready endpoint) is the benchmark's own
observation, converted to the same wall clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .common import BENCH_USER_AGENT, Write, is_operator, summary


def _first(writes: Sequence[Write], after: float, pred: Any) -> Write | None:
    return next((w for w in writes if w.received >= after and pred(w)), None)


def _last(writes: Sequence[Write], after: float, before: float, pred: Any) -> Write | None:
    found = [w for w in writes if after <= w.received <= before and pred(w)]
    return found[-1] if found else None


def _bench(w: Write) -> bool:
    return w.user_agent.startswith(BENCH_USER_AGENT)


def _instance_pod(prefix: str) -> Any:
    return lambda name: name.startswith(prefix) and "-resolve-" not in name


def _collect(per_trial: list[dict[str, float]]) -> dict[str, Any]:
    keys: list[str] = []
    for row in per_trial:
        keys += [k for k in row if k not in keys]
    return {k: summary([row[k] for row in per_trial if k in row]) for k in keys}


def reimage_phases(writes: Sequence[Write], trials: Sequence[Any], names: dict[str, str]) -> dict[str, Any]:
    """Per arm: action -> replacement scheduled -> replacement ready endpoint.

    `trials` have side, victim, seconds, wall_start; `names` maps side -> Deployment name.
    """
    ordered = sorted(writes, key=lambda w: w.received)
    rows: dict[str, list[dict[str, float]]] = {}
    for t in trials:
        if t.seconds is None:
            continue
        end = t.wall_start + t.seconds
        action = _first(ordered, t.wall_start - 1, lambda w, v=t.victim: _bench(w) and w.name == v)
        if action is None:
            continue
        is_new = _instance_pod(f"{names[t.side]}-")
        sched = _first(
            ordered,
            action.received,
            lambda w, v=t.victim, n=is_new: w.key == "pods/binding" and n(w.name) and w.name != v,
        )
        if sched is None:
            continue
        row = {
            "action_to_scheduled_s": sched.received - action.received,
            "scheduled_to_ready_endpoint_s": end - sched.received,
        }
        rows.setdefault(t.side, []).append({k: round(v, 4) for k, v in row.items()})
    return {side: _collect(r) for side, r in rows.items()}


def apply_phases(writes: Sequence[Write], trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: create -> [operator applies the Deployment ->] last pod scheduled -> all instances
    ready endpoints."""
    ordered = sorted(writes, key=lambda w: w.received)
    rows: dict[str, list[dict[str, float]]] = {}
    for t in trials:
        name, arm = t["name"], t["arm"]
        start, end = t["wall_start"], t["wall_start"] + t["seconds"]
        create = _first(
            ordered, start - 1, lambda w, n=name: _bench(w) and w.verb == "create" and w.name == n
        )
        if create is None:
            continue
        is_pod = _instance_pod(f"{name}-")
        sched = _last(
            ordered, create.received, end, lambda w, p=is_pod: w.key == "pods/binding" and p(w.name)
        )
        if sched is None:
            continue
        row: dict[str, float] = {}
        if arm == "floor":
            row["create_to_last_scheduled_s"] = sched.received - create.received
        else:
            dep = _first(
                ordered,
                create.received,
                lambda w, n=name: is_operator(w) and w.resource == "deployments" and w.name == n,
            )
            if dep is None:
                continue
            row["create_to_deployment_applied_s"] = dep.received - create.received
            row["deployment_to_last_scheduled_s"] = sched.received - dep.received
        row["last_scheduled_to_ready_endpoints_s"] = end - sched.received
        rows.setdefault(arm, []).append({k: round(v, 4) for k, v in row.items()})
    return {arm: _collect(r) for arm, r in rows.items()}
