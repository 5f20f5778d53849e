"""Keeping instance names (state/names.py) true on the pods: takeovers, repairs, deletion costs.

Every write names the pod's UID, so a step that outlived its pod never touches a successor. A
takeover first takes the label off the old holder, then puts it on the new one: a name is held by
at most one pod at any moment (for that moment, by none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import constants as c
from ..kube.api import MERGE_PATCH, PODS, KubeApi
from ..kube.errors import GONE_OR_REPLACED, unless
from ..kube.events import EventPoster
from ..state.names import deletion_cost, held_name, leaving, renames, running_as, takeovers


class InstanceNames:
    def __init__(self, kube: KubeApi, post_event: EventPoster) -> None:
        self.kube = kube
        self.post_event = post_event

    def keep(self, body: Mapping[str, Any], role: str, pods: list[dict[str, Any]]) -> bool:
        """Repairs, takeovers, deletion costs; True when it changed any pod (the next pod event
        brings the changed pods back, so a repair is never followed by decisions on stale ones)."""
        repairs = renames(role, pods)
        for rename in repairs:
            labels = {c.INSTANCE_LABEL: rename.name if rename.holds else None}
            annotations = {
                c.INSTANCE_NAME_ANNOTATION: rename.name,
                c.POD_DELETION_COST_ANNOTATION: str(deletion_cost(role, rename.name)),
            }
            if self._patch(rename.pod, labels, annotations):
                pod_name = rename.pod["metadata"]["name"]
                message = f"pod {pod_name} runs as {rename.name}: {rename.reason}"
                self.post_event(rename.pod, "Normal", "InstanceNamed", message)
                self.post_event(body, "Normal", "InstanceNamed", message)
        if repairs:
            return True
        moved = takeovers(role, pods)
        for takeover in moved:
            previous = takeover.predecessor
            if previous is not None and not self._patch(
                previous,
                {c.INSTANCE_LABEL: None},
                {c.POD_DELETION_COST_ANNOTATION: str(deletion_cost(role, None))},
            ):
                continue
            cost = str(deletion_cost(role, takeover.name))
            if self._patch(
                takeover.successor, {c.INSTANCE_LABEL: takeover.name}, {c.POD_DELETION_COST_ANNOTATION: cost}
            ):
                was = f" from {previous['metadata']['name']}" if previous is not None else ""
                message = f"{takeover.name} is pod {takeover.successor['metadata']['name']} now{was}"
                self.post_event(body, "Normal", "InstanceTakenOver", message)
        if moved:
            return True
        changed = False
        for pod in pods:
            # The ReplicaSet removes the lowest cost first: highest numbers, and anything unnamed.
            name = held_name(pod) or (running_as(pod) if not leaving(pod) else None)
            wanted = str(deletion_cost(role, name))
            annotations = pod["metadata"].get("annotations") or {}
            if not leaving(pod) and annotations.get(c.POD_DELETION_COST_ANNOTATION) != wanted:
                changed = self._patch(pod, {}, {c.POD_DELETION_COST_ANNOTATION: wanted}) or changed
        return changed

    def _patch(self, pod: Mapping[str, Any], labels: dict[str, Any], annotations: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        patch: dict[str, Any] = {"metadata": {"uid": meta["uid"], "annotations": annotations}}
        if labels:
            patch["metadata"]["labels"] = labels
        done = unless(
            GONE_OR_REPLACED,
            lambda: self.kube.patch(PODS, meta["namespace"], meta["name"], patch, content_type=MERGE_PATCH),
        )
        return done is not None
