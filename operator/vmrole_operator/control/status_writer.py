"""The VMRole's status: instances, conditions, reimage-all rounds and heals, written only when changed.

Two writes here are commit points that later steps follow from, and both happen before what they
commit to: a new reimage-all token is recorded in `status.lastReimage` before the pod template
changes, and a heal is recorded in `status.recentHeals` before its reimage is requested. A restart
in between finds the record and carries on; it never starts the same round or heal twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import constants as c
from .. import metrics
from ..clock import format_time
from ..kube.api import PODS, KubeApi
from ..kube.errors import GONE_OR_REPLACED, unless
from ..kube.events import EventPoster
from ..models import VMRole
from ..state.healing import heal_token, plan_heals, round_complete, start_round, unrequested_heals
from ..state.instance_state import auto_start_deadline, list_of
from ..state.problems import JUDGED_REASONS, Problem
from ..state.requests import role_reimage_token
from ..state.role_status import compute_status
from .image_pinning import Pin
from .settings_rollout import SettingsRollout, settings_record
from .status_io import patch_role_status

WARNING_STATES = {
    "FailedStartingVM": ("SetupFailed", "setup failed"),
    "FailedStartingRole": ("AutoStartFailed", "did not complete auto-start"),
    "UnresponsiveRole": ("InstanceUnresponsive", "stopped answering its auto-start checks"),
}


class StatusWriter:
    def __init__(self, kube: KubeApi, post_event: EventPoster) -> None:
        self.kube = kube
        self.post_event = post_event
        self.settings = SettingsRollout(kube, post_event)

    def start_reimage_round(
        self, body: Mapping[str, Any], role: VMRole, status: dict[str, Any], now: datetime
    ) -> None:
        """Records a new reimage-all token in status first: that write is the round's commit point, and
        the pod template follows from it (a new token supersedes a round still running)."""
        paused = role.spec.upgrade.paused
        new_round = start_round(status.get("lastReimage"), role_reimage_token(body), paused, now)
        if new_round is None:
            return
        patch_role_status(self.kube, body["metadata"]["namespace"], role.name, {"lastReimage": new_round})
        status["lastReimage"] = new_round
        token = new_round["token"]
        if paused:
            self.post_event(body, "Warning", "ReimageHeld", f"reimage-all {token}: {new_round['message']}")
        else:
            self.post_event(
                body,
                "Normal",
                "ReimageAllStarted",
                f"reimage-all {token}: replacing every instance, at most "
                f"{role.spec.upgrade.maxUnavailable} out of rotation at once",
            )

    def write(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        pin: Pin,
        previous: dict[str, Any],
        pods: list[dict[str, Any]],
        deployment: Mapping[str, Any] | None,
        now: datetime,
        problems: Sequence[Problem] = (),
    ) -> None:
        namespace, name = body["metadata"]["namespace"], role.name
        status = compute_status(role, pods, deployment, pin.image, pin.resolved_from, previous, now, problems)
        self._advance_reimage_round(body, role, status, deployment, now)
        metrics.set_instance_states(namespace, name, Counter(i["state"] for i in status["instances"]))
        ready: dict[str, bool] = {}
        for instance in status["instances"]:
            ready[instance["name"]] = ready.get(instance["name"], False) or instance["ready"]
        metrics.set_instances_ready(namespace, name, ready)
        heals = plan_heals(role, pods, previous.get("recentHeals") or [], now)
        if heals.recent:
            status["recentHeals"] = heals.recent
        else:
            status.pop("recentHeals", None)
        status["heals"] = int(status.get("heals") or 0) + len(heals.new)
        status["settings"] = settings_record(role, previous.get("settings"), now)
        if status != previous:
            # A merge patch keeps keys it does not name, so name the ones that went away as null.
            patch: dict[str, Any] = {k: None for k in previous if k not in status}
            patch.update(status)
            patch_role_status(self.kube, namespace, name, patch)
            self._announce_state_changes(body, role, previous, status, pods, now)
            self._announce_problem(body, previous, status)
            self.settings.announce(body, role, previous.get("settings"), status["settings"])
        # Committed in status (above, or by an earlier run): now act on it.
        self.settings.reboot(role, pods, status["settings"])
        # Recorded first, requested second: a restart in between finds the record and requests it
        # here. The Event goes with the request, so it too is told once per heal.
        for pod in unrequested_heals(heals.recent, pods):
            record = next(h for h in heals.recent if h["uid"] == pod["metadata"]["uid"])
            self._request_reimage(pod, heal_token(record))
            metrics.count_action("heal", "succeeded")
            self.post_event(
                body,
                "Warning",
                "Healing",
                f"reimaging instance {record['pod']}: {record['reason']} "
                f"({status['heals']} automatic reimages in all)",
            )

    def _request_reimage(self, pod: Mapping[str, Any], token: str) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"uid": meta["uid"], "annotations": {c.REIMAGE_ANNOTATION: token}}}
        # 422: the pod became invalid to patch (it is being replaced); the heal is recorded either way.
        unless(
            GONE_OR_REPLACED | {422}, lambda: self.kube.patch(PODS, meta["namespace"], meta["name"], patch)
        )

    def _advance_reimage_round(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        status: dict[str, Any],
        deployment: Mapping[str, Any] | None,
        now: datetime,
    ) -> None:
        last = status.get("lastReimage")
        if not isinstance(last, dict):
            return
        paused = role.spec.upgrade.paused
        if last.get("message") and not paused:
            last = {k: v for k, v in last.items() if k != "message"}
        if round_complete(last, deployment, paused):
            last = {**last, "completedAt": format_time(now)}
            self.post_event(
                body, "Normal", "ReimageAllCompleted", f"reimage-all {last['token']}: every instance replaced"
            )
        status["lastReimage"] = last

    def _announce_problem(
        self, body: Mapping[str, Any], previous: Mapping[str, Any], status: Mapping[str, Any]
    ) -> None:
        """One Warning Event, named after the reason, whenever Degraded takes a judged reason it did
        not have: the same reason with a new message (one more instance stuck, say) is no new Event,
        the condition tells the latest."""
        now, before = _judged_problem(status), _judged_problem(previous)
        if now is not None and (before is None or now[0] != before[0]):
            self.post_event(body, "Warning", now[0], now[1])

    def _announce_state_changes(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        previous: Mapping[str, Any],
        status: Mapping[str, Any],
        pods: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Warning Events the first time an instance enters a failed state; a missed auto-start
        deadline is told on the pod as well."""
        before = {i["name"]: i["state"] for i in previous.get("instances") or []}
        by_name = {p["metadata"]["name"]: p for p in pods}
        timeout_s = role.spec.autoStartTimeoutSeconds
        for instance in status.get("instances") or []:
            state = instance["state"]
            if state not in WARNING_STATES or before.get(instance["name"]) == state:
                continue
            reason, what = WARNING_STATES[state]
            message = f"instance {instance['name']} {what}: {instance.get('message', '')}".rstrip(": ")
            self.post_event(body, "Warning", reason, message)
            pod = by_name.get(instance["pod"])
            deadline = auto_start_deadline(pod, timeout_s) if pod is not None else None
            if pod is not None and deadline is not None and deadline < now:
                self.post_event(
                    pod,
                    "Warning",
                    "AutoStartTimeout",
                    f"auto-start checks did not all pass within {timeout_s}s (spec.autoStartTimeoutSeconds)",
                )


def _judged_problem(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of a Degraded condition that is True for a judged reason, else None."""
    for cond in list_of(status.get("conditions")):
        if isinstance(cond, Mapping) and cond.get("type") == c.CONDITION_DEGRADED:
            reason = str(cond.get("reason"))
            if cond.get("status") == "True" and reason in JUDGED_REASONS:
                return reason, str(cond.get("message", ""))
    return None
