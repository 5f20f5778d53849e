"""PodDisruptionBudget `<name>`: an eviction (a node drain) waits until a replacement serves."""

from __future__ import annotations

from typing import Any

from .. import constants as c
from ..models import VMRole
from .labels import role_labels


def budget_min_available(role: VMRole, room_to_surge: bool) -> int:
    """Every instance, while the cluster has room for a replacement: then no eviction is allowed
    until the operator's surge-first replacement of a cordoned node's instances is ready (one more
    healthy instance than the role asks for). Without room, the rollout budget instead:
    spec.upgrade.maxUnavailable instances at a time."""
    wanted = role.spec.instances
    if room_to_surge:
        return wanted
    return max(0, wanted - role.spec.upgrade.maxUnavailable)


def build_disruption_budget(role: VMRole, room_to_surge: bool = True) -> dict[str, Any]:
    """Counts every instance of the role, in the Deployment's pool or a reimage victim still serving
    (a drain must not evict a victim before its replacement is ready), but not one the operator has
    already taken out of rotation to replace or restart it: that one no longer serves."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": role.name, "labels": role_labels(role)},
        "spec": {
            "minAvailable": budget_min_available(role, room_to_surge),
            "selector": {
                "matchLabels": {c.ROLE_LABEL: role.name},
                "matchExpressions": [
                    {
                        "key": c.IN_ROTATION_LABEL,
                        "operator": "NotIn",
                        "values": [c.OUT_FOR_REIMAGE, c.OUT_FOR_REBOOT],
                    }
                ],
            },
            # A failing instance never holds a drain: it serves nothing, and healing replaces it.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
