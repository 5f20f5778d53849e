"""1. Reimage latency: the operator's reimage of one instance against a plain pod delete (the floor).

Operator: `vmrole.dev/reimage=<token>` set on a pod, until a replacement is a ready endpoint of the
role's Service. Floor: a plain DELETE of a pod of the equivalent Deployment, until its replacement is a
ready endpoint. Trials alternate operator, floor, operator, floor, ... in one namespace. The operator's
own share comes from the audit log: the annotation PATCH reaching the apiserver until the operator's
DELETE of that pod does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .common import BENCH_USER_AGENT, AuditLog, is_operator, ratio, summary
from .pair import FLOOR, OPERATOR, Pair, Side, operator_handles_reimage, wait_gone
from .phases import reimage_phases


@dataclass
class Trial:
    side: str
    victim: str
    token: str
    seconds: float | None
    wall_start: float


class ReimageUnsupported(RuntimeError):
    pass


def one_trial(
    side: Side, instances: int, index: int, token: str, timeout: float, act_timeout: float
) -> Trial:
    before = side.steady(instances, timeout)
    victim = sorted(before)[index % instances]
    wall = time.time()
    t0 = time.monotonic()
    side.replace(victim, token)
    try:
        t1 = side.wait_new_ready(before, act_timeout if side.kind == OPERATOR else timeout)
    except TimeoutError:
        exists, terminating = side.pod_exists(victim)
        if side.kind == OPERATOR and exists and not terminating:
            raise ReimageUnsupported(
                f"the operator did not act on {victim}'s vmrole.dev/reimage annotation "
                f"within {act_timeout:.0f}s"
            ) from None
        t1 = side.wait_new_ready(before, timeout)
    wait_gone(side, victim, timeout)
    return Trial(side.kind, victim, token, round(t1 - t0, 4), wall)


def operator_shares(audit: AuditLog, mark: Any, namespace: str, trials: list[Trial]) -> list[dict[str, Any]]:
    """Per operator trial, from the apiserver's clock: annotation -> first operator write on the pod
    (reaction) -> the operator's DELETE (the rest is the drain wait)."""
    writes = [w for w in audit.writes(mark, namespace) if w.resource == "pods"]
    shares = []
    for trial in trials:
        on_pod = sorted((w for w in writes if w.name == trial.victim), key=lambda w: w.received)
        annotated = next(
            (w for w in on_pod if w.user_agent.startswith(BENCH_USER_AGENT) and w.verb == "patch"), None
        )
        if annotated is None:
            continue
        after = [w for w in on_pod if is_operator(w) and w.received >= annotated.received]
        delete = next((w for w in after if w.verb == "delete"), None)
        if delete is None or not after:
            continue
        shares.append(
            {
                "annotation_to_delete_s": round(delete.received - annotated.received, 4),
                "annotation_to_first_write_s": round(after[0].received - annotated.received, 4),
                "first_write": f"{after[0].verb} {after[0].key}",
            }
        )
    return shares


def run(pair: Pair, trials: int, timeout: float = 180, act_timeout: float = 60) -> dict[str, Any]:
    """`trials` reimages and `trials` pod deletes, alternating, on a ready `pair`."""
    namespace = pair.namespace
    audit = AuditLog()
    mark = audit.mark() if audit.available else None
    done: list[Trial] = []
    unsupported: str | None = None
    for i in range(trials):
        for side in pair.sides():
            if side.kind == OPERATOR and unsupported:
                continue
            try:
                done.append(one_trial(side, pair.instances, i, f"bench-{i}", timeout, act_timeout))
            except ReimageUnsupported as e:
                unsupported = str(e)
    op = [t.seconds for t in done if t.side == OPERATOR and t.seconds is not None]
    floor = [t.seconds for t in done if t.side == FLOOR and t.seconds is not None]
    op_s, floor_s = summary(op), summary(floor)
    shares: list[dict[str, Any]] = []
    phases: dict[str, Any] = {}
    if mark is not None:
        time.sleep(1)  # audit events are written when the response completes
        shares = operator_shares(audit, mark, namespace, [t for t in done if t.side == OPERATOR])
        phases = reimage_phases(audit.writes(mark, namespace), done, {OPERATOR: "op", FLOOR: "floor"})
    share_s = summary([s["annotation_to_delete_s"] for s in shares])
    reaction_s = summary([s["annotation_to_first_write_s"] for s in shares])
    result: dict[str, Any] = {
        "trials_per_arm": trials,
        "operator": op_s,
        "floor": floor_s,
        "operator_median_s": op_s["median"],
        "operator_p90_s": op_s["p90"],
        "floor_median_s": floor_s["median"],
        "floor_p90_s": floor_s["p90"],
        "ratio_median": ratio(op_s["median"], floor_s["median"]),
        "ratio_p90": ratio(op_s["p90"], floor_s["p90"]),
        "operator_share": share_s,
        "operator_share_median_s": share_s["median"],
        "operator_share_p90_s": share_s["p90"],
        "operator_reaction": reaction_s,
        "operator_share_samples": shares,
        "phases": phases,
        "operator_samples_s": op,
        "floor_samples_s": floor,
        "order": [f"{t.side}:{t.seconds}" for t in done],
        "image": pair.image,
    }
    if unsupported:
        result["operator_unavailable"] = unsupported
        result["operator_code_mentions_reimage"] = operator_handles_reimage()
    return result
