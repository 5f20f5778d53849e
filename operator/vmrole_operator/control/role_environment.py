"""Keeping every instance's role environment current (specs/environment.py has what it holds).

The kubelet refreshes ConfigMap and downward-API files only when it syncs a pod, which without a
reason happens about once a minute. When the files' content changes, the operator moves
ENVIRONMENT_ANNOTATION on each running instance: a change to the pod makes the kubelet sync it at
once, so a topology or settings change reaches the files within seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import constants as c
from ..kube.api import MERGE_PATCH, PODS, KubeApi
from ..kube.errors import GONE_OR_REPLACED, unless
from ..models import VMRole
from ..specs.environment import environment_version, topology_text
from ..state.instance_state import main_container_started_at
from ..state.names import holders_by_number, leaving


def topology_of(role: VMRole, pods: Sequence[Mapping[str, Any]]) -> str:
    return topology_text(role, holders_by_number(role.name, pods))


def version_of(role: VMRole, pods: Sequence[Mapping[str, Any]]) -> str:
    return environment_version(topology_of(role, pods), role.spec.settings)


def nudge(kube: KubeApi, role: VMRole, pods: Sequence[Mapping[str, Any]]) -> int:
    """Moves the annotation on running instances whose files are behind; returns how many."""
    version = version_of(role, pods)
    moved = 0
    for pod in pods:
        meta = pod["metadata"]
        current = (meta.get("annotations") or {}).get(c.ENVIRONMENT_ANNOTATION)
        if current == version or leaving(pod) or main_container_started_at(pod) is None:
            continue
        moved += _annotate(kube, meta, {c.ENVIRONMENT_ANNOTATION: version})
    return moved


def _annotate(kube: KubeApi, meta: Mapping[str, Any], annotations: dict[str, str]) -> bool:
    patch = {"metadata": {"uid": meta["uid"], "annotations": annotations}}
    done = unless(
        GONE_OR_REPLACED,
        lambda: kube.patch(PODS, meta["namespace"], meta["name"], patch, content_type=MERGE_PATCH),
    )
    return done is not None
