"""Where instances run: fault domains (topology spread) and how long they stay on a lost node."""

from __future__ import annotations

from typing import Any, Final

from ..models import Toleration, VMRole
from .labels import pool_selector

HOSTNAME_KEY: Final = "kubernetes.io/hostname"
ZONE_KEY: Final = "topology.kubernetes.io/zone"
# Taints the node controller puts on a node that stopped answering; a pod tolerating them for N
# seconds is evicted N seconds after the taint, and its ReplicaSet starts a replacement elsewhere.
NODE_LOSS_TAINTS: Final = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _spread(role: VMRole, key: str, when_unsatisfiable: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": key,
        "whenUnsatisfiable": when_unsatisfiable,
        # Only the Deployment's own instances count: a reimage victim, about to go, does not hold a
        # place its replacement needs.
        "labelSelector": {"matchLabels": pool_selector(role)},
        # Each revision spreads on its own, so a rolling update is not squeezed by the old one.
        "matchLabelKeys": ["pod-template-hash"],
        # Tainted nodes (the control plane, a cordoned node) are not fault domains an instance
        # could use; counting them would hold every other node to their zero.
        "nodeTaintsPolicy": "Honor",
    }


def topology_spread(role: VMRole) -> list[dict[str, Any]] | None:
    """spec.spread as topology spread constraints.

    Preferred: as even as the scheduler can over nodes and zones. Required: every instance on a
    node of its own (minDomains = instances makes each node hold at most one while there are fewer
    usable nodes than instances), so an instance with no free node stays Pending and says why.
    Zones are always a preference: nodes without a zone label are common, and must not stop a role.
    """
    if role.spec.spread == "Off":
        return None
    zone = _spread(role, ZONE_KEY, "ScheduleAnyway")
    if role.spec.spread == "Preferred" or role.spec.instances == 0:
        return [_spread(role, HOSTNAME_KEY, "ScheduleAnyway"), zone]
    strict = {**_spread(role, HOSTNAME_KEY, "DoNotSchedule"), "minDomains": role.spec.instances}
    return [strict, zone]


def _tolerated(toleration: Toleration, taint_key: str) -> bool:
    """Whether the user's toleration already covers the NoExecute taint `taint_key`."""
    if toleration.key in (None, ""):
        key_matches = toleration.operator == "Exists"
    else:
        key_matches = toleration.key == taint_key and (
            toleration.operator == "Exists" or not toleration.value
        )
    return key_matches and toleration.effect in (None, "NoExecute")


def tolerations(role: VMRole) -> list[dict[str, Any]]:
    """The user's tolerations, plus the node-loss ones (spec.healing.nodeLossSeconds) for taints they
    do not cover: Kubernetes' own default keeps an instance bound to a lost node for 300 s."""
    own = list(role.spec.tolerations or [])
    result = [t.model_dump(exclude_none=True) for t in own]
    for taint in NODE_LOSS_TAINTS:
        if not any(_tolerated(t, taint) for t in own):
            result.append(
                {
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": role.spec.healing.nodeLossSeconds,
                }
            )
    return result
