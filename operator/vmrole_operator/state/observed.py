"""What the operator last saw of a role's objects, kept in kopf indexes instead of read per reconcile.

kopf fills the indexes from the watches it runs anyway, and runs no handler before every index is
populated, so a restarted operator compares against the full picture and writes nothing when
nothing changed. Entries are trimmed to what the reconciler reads (no managedFields, no pod spec
beyond container names and images) and kept as compact JSON (`pack`): a Deployment's dict tree
takes about six times the memory of its JSON text, and only the few entries of the role being
reconciled are ever decoded at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import constants as c


def _metadata(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    return {
        "apiVersion": body.get("apiVersion", "v1"),
        "kind": "Pod",
        "metadata": _metadata(body),
        "spec": {
            "nodeName": spec.get("nodeName"),
            "initContainers": [{"name": x.get("name")} for x in spec.get("initContainers") or []],
            "containers": [
                {"name": x.get("name"), "image": x.get("image")} for x in spec.get("containers") or []
            ],
        },
        "status": dict(body.get("status") or {}),
    }


def trim_pod_for_node(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What node maintenance decides an instance on, and no more: kept for every instance."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return {
        "metadata": {
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
            "labels": {k: labels[k] for k in (c.IN_POOL_LABEL, c.IN_ROTATION_LABEL) if k in labels},
            "annotations": {k: annotations[k] for k in (c.REIMAGE_ANNOTATION,) if k in annotations},
        },
        "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName")},
    }


def trim_child(body: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the drift check compares; status only for a Deployment (the role's status uses it)."""
    trimmed = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    trimmed["metadata"] = _metadata(body)
    if body.get("kind") == "Deployment":
        trimmed["status"] = dict(body.get("status") or {})
    return trimmed


def pack(entry: Mapping[str, Any]) -> str:
    """An index entry as kopf keeps it; `Observed.of` decodes it again."""
    return json.dumps(entry, separators=(",", ":"))


def unpack(entry: str) -> dict[str, Any]:
    unpacked: dict[str, Any] = json.loads(entry)
    return unpacked


@dataclass(frozen=True)
class Observed:
    """A snapshot of one role's objects, taken in the event loop before blocking work starts."""

    pods: list[dict[str, Any]] = field(default_factory=list)
    resolvers: list[dict[str, Any]] = field(default_factory=list)
    children: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        pods: Iterable[str],
        resolvers: Iterable[str],
        children: Iterable[str],
    ) -> Observed:
        """From packed index entries; every call decodes fresh dicts the caller may change."""
        unpacked = [json.loads(ch) for ch in children]
        return cls(
            pods=[json.loads(p) for p in pods],
            resolvers=[json.loads(p) for p in resolvers],
            children={(str(ch["kind"]), str(ch["metadata"]["name"])): ch for ch in unpacked},
        )

    def child(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.children.get((kind, name))

    def resolver(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.resolvers if p["metadata"]["name"] == name), None)
