"""Resolving a tag to the digest that pins the golden image, before any instance runs it.

A short-lived resolver pod asks the kubelet to resolve the tag exactly as an instance would (same
image, same pull policy, same node selection). Its command is a path no image has, so nothing from
the image ever runs; the container fails to start, but by then the kubelet reports `imageID`. The
Deployment is created (or rolled) only with the digest, so a tag costs one resolver pod and never an
extra rollout of the instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import constants as c
from .models import VMRole
from .pinning import pinned_reference

# Waiting reasons that mean the kubelet cannot get the image; anything else is still in progress.
IMAGE_FAILURE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


def resolver_pod_name(role_name: str, image: str) -> str:
    """Stable per (role, image) and within 63 characters, so it is also a valid DNS label."""
    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    return f"{role_name[: 63 - len('-resolve-') - 10].rstrip('-')}-resolve-{digest}"


def build_resolver_pod(role: VMRole) -> dict[str, Any]:
    """The resolver pod; the caller adopts it (owner reference) like every other child."""
    name = str(role.metadata["name"])
    spec = role.spec
    security = spec.securityContext
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": security.runAsUser,
            "runAsGroup": security.runAsGroup,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": c.RESOLVER_CONTAINER,
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "command": [c.RESOLVER_COMMAND],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "1m", "memory": "1Mi"},
                    "limits": {"cpu": "10m", "memory": "16Mi"},
                },
            }
        ],
    }
    if spec.nodeSelector:
        pod_spec["nodeSelector"] = dict(spec.nodeSelector)
    if spec.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in spec.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": resolver_pod_name(name, spec.image),
            "labels": {c.RESOLVER_FOR_LABEL: name, c.MANAGED_BY_LABEL: c.MANAGED_BY},
            "annotations": {c.RESOLVES_IMAGE_ANNOTATION: spec.image},
        },
        "spec": pod_spec,
    }


@dataclass(frozen=True)
class Resolution:
    """What a resolver pod tells: the image it resolves and, once known, its pin or the failure."""

    image: str
    pinned: str | None = None
    failure: str | None = None


def read_resolver_pod(pod: Mapping[str, Any]) -> Resolution | None:
    """None for a pod that is not a resolver pod."""
    image = ((pod.get("metadata") or {}).get("annotations") or {}).get(c.RESOLVES_IMAGE_ANNOTATION)
    if not image:
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != c.RESOLVER_CONTAINER:
            continue
        image_id = status.get("imageID") or ""
        pinned = pinned_reference(image, image_id)
        if pinned:
            return Resolution(image, pinned=pinned)
        if image_id:
            # The runtime knows the image only by its config id: there is no digest to pin by.
            return Resolution(image, failure=f"the node reports image ID {image_id}, not a repository digest")
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_FAILURE_REASONS:
            return Resolution(image, failure=f"{waiting['reason']}: {waiting.get('message', '')}".strip(": "))
    return Resolution(image)
