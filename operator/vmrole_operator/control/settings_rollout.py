"""A settings change: files rewritten in place, then, if the role asks, instances restarted or replaced.

`status.settings` records the settings in effect and when they changed; it is written when the
operator first sees new settings, before anything acts on them (the commit point). Then:
- InPlace: the files change in every instance (role_environment.py), nothing restarts;
- Reimage: the pod template carries the settings' digest, so the Deployment replaces every
  instance, rolling, bounded by maxUnavailable and maxSurge;
- Reboot: the operator reboots, by the ordinary reboot request (token `settings-<digest>`), every
  instance started before the change, at most maxUnavailable out of rotation at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import constants as c
from ..clock import format_time, parse_time
from ..kube.api import MERGE_PATCH, PODS, KubeApi
from ..kube.errors import GONE_OR_REPLACED, unless
from ..kube.events import EventPoster
from ..models import VMRole
from ..specs.environment import settings_hash
from ..state.instance_state import in_rotation
from ..state.names import leaving, name_of
from ..state.requests import pending_reboot, reboot_in_flight


def settings_token(digest: str) -> str:
    return f"settings-{digest}"


def settings_record(role: VMRole, previous: Mapping[str, Any] | None, now: datetime) -> dict[str, str]:
    """status.settings: unchanged while the digest is; the first record dates from the role's
    creation, so instances of a role that predates it never count as behind."""
    digest = settings_hash(role)
    if isinstance(previous, Mapping) and previous.get("hash") == digest:
        return {"hash": digest, "changedAt": str(previous["changedAt"])}
    if not isinstance(previous, Mapping):
        created = parse_time(role.metadata.get("creationTimestamp")) or now
        return {"hash": digest, "changedAt": format_time(created)}
    return {"hash": digest, "changedAt": format_time(now)}


def reboots_due(
    role: VMRole, pods: Sequence[Mapping[str, Any]], record: Mapping[str, str]
) -> list[Mapping[str, Any]]:
    """Under settingsChange Reboot, the instances to reboot now: started before the change and not
    rebooted for it yet, as many as maxUnavailable allows beside those already out of rotation."""
    if role.spec.settingsChange != "Reboot":
        return []
    token = settings_token(record["hash"])
    changed = parse_time(record["changedAt"])
    live = [p for p in pods if not leaving(p)]

    def behind(pod: Mapping[str, Any]) -> bool:
        created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
        done = ((pod.get("metadata") or {}).get("annotations") or {}).get(c.REBOOT_DONE_ANNOTATION)
        return created is not None and changed is not None and created < changed and done != token

    rebooting = [p for p in live if pending_reboot(p) or reboot_in_flight(p)]
    out = sum(1 for p in live if not in_rotation(p) or p in rebooting)
    room = max(0, role.spec.upgrade.maxUnavailable - out)
    waiting = [p for p in live if behind(p) and p not in rebooting and in_rotation(p)]
    return sorted(waiting, key=name_of)[:room]


class SettingsRollout:
    def __init__(self, kube: KubeApi, post_event: EventPoster) -> None:
        self.kube = kube
        self.post_event = post_event

    def announce(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        before: Mapping[str, Any] | None,
        after: Mapping[str, str],
    ) -> None:
        if isinstance(before, Mapping) and before.get("hash") != after["hash"]:
            how = {
                "InPlace": "files rewritten in every instance",
                "Reboot": f"files rewritten; instances restart, {role.spec.upgrade.maxUnavailable} at a time",
                "Reimage": "instances replaced, rolling",
            }[role.spec.settingsChange]
            self.post_event(body, "Normal", "SettingsChanged", f"settings {after['hash']}: {how}")

    def reboot(self, role: VMRole, pods: Sequence[Mapping[str, Any]], record: Mapping[str, str]) -> None:
        token = settings_token(record["hash"])
        for pod in reboots_due(role, pods, record):
            self._request(pod["metadata"], token)

    def _request(self, meta: Mapping[str, Any], token: str) -> None:
        patch = {"metadata": {"uid": meta["uid"], "annotations": {c.REBOOT_ANNOTATION: token}}}
        unless(
            GONE_OR_REPLACED,
            lambda: self.kube.patch(PODS, meta["namespace"], meta["name"], patch, content_type=MERGE_PATCH),
        )
