"""Pure decisions of the platform's own reimages ("healing") and of reimage-all rounds.

Healing: an instance whose setup keeps failing, that crash-loops past a threshold, or that never
completes auto-start is reimaged, at most `spec.healing.maxPerHour` times an hour per role. Each
heal is first recorded in `status.recentHeals` (pod, UID, reason), then requested through the
ordinary reimage annotation, so an operator restart between the two finishes it and never repeats it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import constants as c
from ..clock import format_time, parse_time
from ..models import VMRole
from .instance_state import InstanceState, auto_start_deadline, container_status, instance_state
from .requests import is_terminating, pending_reimage

HEAL_WINDOW = timedelta(hours=1)


def _restarts(pod: Mapping[str, Any], name: str, *, init: bool) -> int:
    status = container_status(pod, name, init=init)
    return int((status or {}).get("restartCount") or 0)


def heal_reason(pod: Mapping[str, Any], role: VMRole, now: datetime) -> str | None:
    """Why this instance should be reimaged by the platform, or None."""
    if is_terminating(pod) or pending_reimage(pod) is not None:
        return None
    threshold = role.spec.healing.restartThreshold
    state, _, _ = instance_state(pod, now, role.spec.autoStartTimeoutSeconds)
    if (
        state == InstanceState.FAILED_STARTING_VM
        and _restarts(pod, c.SETUP_CONTAINER, init=True) >= threshold
    ):
        return "SetupFailing"
    if state == InstanceState.FAILED_STARTING_ROLE:
        if _restarts(pod, c.MAIN_CONTAINER, init=False) >= threshold:
            return "CrashLooping"
        deadline = auto_start_deadline(pod, role.spec.autoStartTimeoutSeconds)
        if deadline is not None and deadline < now:
            return "AutoStartTimeout"  # running, but its checks never all passed in time
    return None


@dataclass(frozen=True)
class HealPlan:
    recent: list[dict[str, Any]]  # status.recentHeals to write (the last hour, plus the new ones)
    new: list[dict[str, Any]]  # heals decided now


def plan_heals(
    role: VMRole,
    pods: Sequence[Mapping[str, Any]],
    previous_recent: Sequence[Mapping[str, Any]],
    now: datetime,
) -> HealPlan:
    recent = [
        dict(h)
        for h in previous_recent
        if (at := parse_time(h.get("at"))) is not None and now - at < HEAL_WINDOW
    ]
    if not role.spec.healing.enabled:
        return HealPlan(recent, [])
    budget = role.spec.healing.maxPerHour - len(recent)
    healed_uids = {h.get("uid") for h in recent}
    new: list[dict[str, Any]] = []
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        if budget <= len(new):
            break
        uid = pod["metadata"].get("uid")
        reason = heal_reason(pod, role, now)
        if reason is not None and uid not in healed_uids:
            new.append({"pod": pod["metadata"]["name"], "uid": uid, "reason": reason, "at": format_time(now)})
    return HealPlan(recent + new, new)


def heal_token(record: Mapping[str, Any]) -> str:
    """The reimage token a heal writes: says who asked and why, and is a valid token."""
    at = parse_time(record.get("at"))
    stamp = at.strftime("%Y%m%dT%H%M%SZ") if at is not None else "0"
    return f"heal.{record['reason']}.{stamp}"


def unrequested_heals(
    recent: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Recorded heals whose pod still lives without the reimage request (an operator died between)."""
    by_uid = {p["metadata"].get("uid"): p for p in pods}
    out = []
    for record in recent:
        pod = by_uid.get(record.get("uid"))
        if (
            pod is not None
            and not is_terminating(pod)
            and c.REIMAGE_ANNOTATION not in (pod["metadata"].get("annotations") or {})
        ):
            out.append(dict(pod))
    return out


def start_round(
    last: Mapping[str, Any] | None, token: str | None, paused: bool, now: datetime
) -> dict[str, Any] | None:
    """The new status.lastReimage when the role's reimage annotation carries a token not yet handled."""
    if token is None or (last is not None and last.get("token") == token):
        return None
    record: dict[str, Any] = {"token": token, "startedAt": format_time(now)}
    if paused:
        record["message"] = "held: spec.upgrade.paused is true; the round runs when it is unpaused"
    return record


def round_complete(
    last: Mapping[str, Any] | None, deployment: Mapping[str, Any] | None, paused: bool
) -> bool:
    """Every instance runs the round's pod template and is in rotation, and no older one is left."""
    if last is None or last.get("completedAt") or deployment is None or paused:
        return False
    template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    if (template.get("annotations") or {}).get(c.REIMAGE_ROUND_ANNOTATION) != last.get("token"):
        return False
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    want = int((deployment.get("spec") or {}).get("replicas") or 0)
    return (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("readyReplicas") or 0) == want
    )
