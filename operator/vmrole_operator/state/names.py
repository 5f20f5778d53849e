"""Named instances: `web_IN_0` keeps its name while the pod serving it changes.

Two marks on a pod carry a name:
- the annotation INSTANCE_NAME_ANNOTATION: the name the pod runs as. It is set when the pod is
  created, so setup already reads it (`/etc/vmrole/role/instance-id`), and never changes after, but
  for a collision the operator resolves (with an Event);
- the label INSTANCE_LABEL: the pod holds the name. At most one pod holds a name at any moment.

A new pod takes over the name of the pod it replaces: a reimage's victim, a pod of the previous
revision in a rolling update, a pod being deleted or one that has finished (evicted, or lost with
its node). It holds the name from the moment it enters rotation: the operator first takes the label
off the old pod, then puts it on the new one. A new pod that replaces nobody takes the lowest free
number and holds it at once. Scale-down removes the highest numbers first, through the Deployment's
own `controller.kubernetes.io/pod-deletion-cost`.

Everything here is pure: the decisions come from the pods as the API lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import constants as c
from .instance_state import in_rotation, map_of, metadata_of, pod_status_of
from .requests import is_terminating, pending_reimage

# A pod with no name (made while the operator was down) or one that lost a collision goes first.
UNNAMED_DELETION_COST = -(2**31) + 1


def instance_name(role: str, number: int) -> str:
    return f"{role}{c.INSTANCE_NAME_INFIX}{number}"


def instance_number(role: str, name: str | None) -> int | None:
    """n of `<role>_IN_<n>`; None for anything else."""
    if not name:
        return None
    match = re.fullmatch(rf"{re.escape(role)}{c.INSTANCE_NAME_INFIX}(0|[1-9][0-9]*)", name)
    return int(match.group(1)) if match else None


def held_name(pod: Mapping[str, Any]) -> str | None:
    value = map_of(metadata_of(pod).get("labels")).get(c.INSTANCE_LABEL)
    return str(value) if value else None


def running_as(pod: Mapping[str, Any]) -> str | None:
    value = map_of(metadata_of(pod).get("annotations")).get(c.INSTANCE_NAME_ANNOTATION)
    return str(value) if value else None


def _template_hash(pod: Mapping[str, Any]) -> str | None:
    value = map_of(metadata_of(pod).get("labels")).get("pod-template-hash")
    return str(value) if value else None


def _created(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = metadata_of(pod)
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def leaving(pod: Mapping[str, Any]) -> bool:
    """On its way out: being deleted, finished (evicted, or failed with a lost node), or a reimage
    victim. Its name passes to the pod that replaces it."""
    phase = pod_status_of(pod).get("phase")
    return is_terminating(pod) or phase in ("Failed", "Succeeded") or pending_reimage(pod) is not None


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(
        map_of(x).get("type") == "Ready" and map_of(x).get("status") == "True"
        for x in pod_status_of(pod).get("conditions") or []
    )


@dataclass(frozen=True)
class Assignment:
    name: str
    holds: bool  # the name is free: the pod holds it from creation; else it takes it over later


def assign(
    role: str, pods: Sequence[Mapping[str, Any]], new_pod: Mapping[str, Any], reserved: Iterable[str] = ()
) -> Assignment:
    """The name of a pod about to be created, given the role's other pods and the names the
    operator handed out that no listed pod carries yet (`reserved`)."""
    holders = {name: pod for pod in pods if (name := held_name(pod))}
    taken = set(reserved) | {
        n for pod in pods if (n := running_as(pod)) and not held_name(pod) and not leaving(pod)
    }
    # 1. The name of a pod that is leaving now (reimage victim, deleted, finished).
    for name, pod in sorted(holders.items(), key=lambda kv: instance_number(role, kv[0]) or 0):
        if name not in taken and leaving(pod):
            return Assignment(name, holds=False)
    # 2. In a rolling update, the pod of the previous revision the Deployment removes next: one not
    #    ready first, then the highest number (the deletion cost it carries).
    revision = _template_hash(new_pod)
    older = [
        (name, pod)
        for name, pod in holders.items()
        if name not in taken and revision and _template_hash(pod) not in (None, revision)
    ]
    if older:
        name, _ = min(older, key=lambda kv: (_ready(kv[1]), -(instance_number(role, kv[0]) or 0)))
        return Assignment(name, holds=False)
    # 3. Nobody is replaced: the lowest free number, held at once.
    used = {instance_number(role, n) for n in set(holders) | taken}
    number = next(n for n in range(len(used) + 1) if n not in used)
    return Assignment(instance_name(role, number), holds=True)


def deletion_cost(role: str, name: str | None) -> int:
    """`controller.kubernetes.io/pod-deletion-cost`: the ReplicaSet removes the lowest first, so the
    highest numbers go first, and a pod without a name before any named one."""
    number = instance_number(role, name)
    return -number if number is not None else UNNAMED_DELETION_COST


@dataclass(frozen=True)
class Takeover:
    """`successor` holds `name` from now on; `predecessor` (if any) gives it up first."""

    name: str
    successor: Mapping[str, Any]
    predecessor: Mapping[str, Any] | None


@dataclass(frozen=True)
class Rename:
    """A pod runs as a name another pod holds or runs as (a collision after a crash): it gets `name`."""

    pod: Mapping[str, Any]
    name: str
    holds: bool
    reason: str


def takeovers(role: str, pods: Sequence[Mapping[str, Any]]) -> list[Takeover]:
    """Pods that should hold the name they run as, now: the name is free, or its holder is leaving
    and the pod has entered rotation (surge first: the old one serves until the new one does)."""
    holders = {name: pod for pod in pods if (name := held_name(pod))}
    found = []
    for pod in sorted(pods, key=_created):
        name = running_as(pod)
        if name is None or held_name(pod) == name or leaving(pod) or instance_number(role, name) is None:
            continue
        holder = holders.get(name)
        if holder is None:
            found.append(Takeover(name, pod, None))
            holders[name] = pod
        elif leaving(holder) and in_rotation(pod):
            found.append(Takeover(name, pod, holder))
            holders[name] = pod
    return found


def renames(role: str, pods: Sequence[Mapping[str, Any]]) -> list[Rename]:
    """Deterministic repairs: a pod without a name gets one; of two pods holding one name, or of two
    newcomers running as one name, the older keeps it and the younger gets another."""
    live = [p for p in pods if not leaving(p)]
    found: list[Rename] = []
    holders: dict[str, Mapping[str, Any]] = {}
    runners: dict[str, Mapping[str, Any]] = {}
    for pod in sorted(live, key=_created):
        held, name = held_name(pod), running_as(pod)
        if held is not None:
            if held in holders:
                found.append(
                    Rename(pod, "", False, f"{held} is held by {metadata_of(holders[held]).get('name')}")
                )
                continue
            holders[held] = pod
        if name is not None and held is None:
            if name in runners or instance_number(role, name) is None:
                found.append(Rename(pod, "", False, f"{name} is taken"))
                continue
            runners[name] = pod
        if name is None and held is None:
            found.append(Rename(pod, "", False, "created without a name"))
    # Hand out names in creation order, as the admission webhook would have.
    resolved: list[Rename] = []
    assigned: list[str] = []
    for rename in found:
        others = [p for p in pods if p is not rename.pod and not any(p is r.pod for r in found)]
        chosen = assign(role, others, rename.pod, reserved=assigned)
        assigned.append(chosen.name)
        resolved.append(Rename(rename.pod, chosen.name, chosen.holds, rename.reason))
    return resolved


def name_of(pod: Mapping[str, Any]) -> str:
    """The name shown for a pod: the one it holds, else the one it runs as, else its pod name."""
    return held_name(pod) or running_as(pod) or str(metadata_of(pod).get("name", ""))


def holders_by_number(role: str, pods: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, pod IP) of every pod holding a name and having an IP, in number order."""
    found = [
        (number, name, str(ip))
        for pod in pods
        if (name := held_name(pod)) is not None
        and (number := instance_number(role, name)) is not None
        and (ip := pod_status_of(pod).get("podIP"))
    ]
    return [(name, ip) for _, name, ip in sorted(found)]
