"""The resolver pod: it makes the kubelet resolve a tag exactly as an instance would (same image,
pull policy and node selection) without running anything from the image. Its command is a path no
image has, so the container never starts, but by then the kubelet reports `imageID`; the Deployment
is created (or rolled) only with the digest, so a tag costs one short-lived pod and never an extra
rollout of the instances.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .. import constants as c
from ..models import VMRole


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
