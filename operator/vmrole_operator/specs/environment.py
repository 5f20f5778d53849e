"""The role environment inside every instance: who it is, who its peers are, and its settings.

- `/etc/vmrole/role/instance-id`: the name the instance runs as (downward API, from the pod's
  INSTANCE_NAME_ANNOTATION, which is set when the pod is created);
- `/etc/vmrole/role/instances`: one line per instance holding a name, in number order:
  `<name> <ip>` then `<endpoint>=<ip>:<port>` for each internal endpoint (ConfigMap `<role>-instances`,
  kept current by the operator as the topology changes);
- `/etc/vmrole/settings/<key>`: `spec.settings` (ConfigMap `<role>-settings`).

All of it is mounted read-only into setup and the main container, and every source is optional, so
an instance starts even before the operator wrote a ConfigMap (and finds the files empty); a role
without settings has no settings ConfigMap at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .. import constants as c
from ..models import VMRole
from .labels import role_labels


def settings_configmap_name(role: VMRole) -> str:
    return f"{role.name}{c.SETTINGS_CONFIGMAP_SUFFIX}"


def topology_configmap_name(role: VMRole) -> str:
    return f"{role.name}{c.TOPOLOGY_CONFIGMAP_SUFFIX}"


def settings_hash(role: VMRole) -> str:
    """Short, stable digest of spec.settings: the token of a settings change."""
    text = json.dumps(role.spec.settings or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_settings_configmap(role: VMRole) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": settings_configmap_name(role), "labels": role_labels(role)},
        "data": dict(role.spec.settings or {}),
    }


def topology_text(role: VMRole, instances: Sequence[tuple[str, str]]) -> str:
    """The `instances` file from (name, pod IP) pairs of the instances holding a name."""
    ports = [(e.name, e.effective_target_port) for e in role.spec.endpoints.internal]
    lines = []
    for name, ip in instances:
        endpoints = " ".join(f"{endpoint}={ip}:{port}" for endpoint, port in ports)
        lines.append(f"{name} {ip} {endpoints}".rstrip())
    return "".join(f"{line}\n" for line in lines)


def build_topology_configmap(role: VMRole, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": topology_configmap_name(role), "labels": role_labels(role)},
        "data": {c.INSTANCES_FILE: text},
    }


def environment_volumes(role: VMRole) -> list[dict[str, Any]]:
    instance_id = {
        "path": c.INSTANCE_ID_FILE,
        "fieldRef": {"fieldPath": f"metadata.annotations['{c.INSTANCE_NAME_ANNOTATION}']"},
    }
    return [
        {
            "name": c.ROLE_ENVIRONMENT_VOLUME,
            "projected": {
                "sources": [
                    {"downwardAPI": {"items": [instance_id]}},
                    {
                        "configMap": {
                            "name": topology_configmap_name(role),
                            "items": [{"key": c.INSTANCES_FILE, "path": c.INSTANCES_FILE}],
                            "optional": True,
                        }
                    },
                ]
            },
        },
        {"name": c.SETTINGS_VOLUME, "configMap": {"name": settings_configmap_name(role), "optional": True}},
    ]


def environment_mounts() -> list[dict[str, Any]]:
    return [
        {"name": c.ROLE_ENVIRONMENT_VOLUME, "mountPath": c.ROLE_ENVIRONMENT_DIR, "readOnly": True},
        {"name": c.SETTINGS_VOLUME, "mountPath": c.SETTINGS_DIR, "readOnly": True},
    ]


def environment_version(topology: str, settings: Mapping[str, str] | None) -> str:
    """What the files hold, as a short digest: moved on a pod, it makes the kubelet refresh them."""
    text = json.dumps([topology, settings or {}], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
