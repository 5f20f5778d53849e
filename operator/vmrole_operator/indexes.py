"""kopf indexes: trimmed copies of each role's pods and children, kept from the watches kopf runs.

The reconciler reads these instead of GET and LIST calls (see state/observed.py), and kopf runs no
handler before every index is populated, so a restarted operator compares against the full picture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from . import constants as c
from .state.observed import Observed, pack, trim_child, trim_pod, trim_pod_for_node, unpack

RoleKey = tuple[str, str]  # (namespace, role name)
Entries = kopf.Index[RoleKey, str]  # packed (JSON text) trimmed objects


def owning_role(body: kopf.Body, via_replica_set: bool = False) -> str | None:
    """The role named by the label, but only for objects that really belong to a VMRole."""
    role = body.metadata.labels.get(c.ROLE_LABEL) or body.metadata.labels.get(c.RESOLVER_FOR_LABEL)
    refs = body.metadata.get("ownerReferences") or []
    owner_kinds = {(ref.get("kind"), ref.get("apiVersion", "").split("/")[0]) for ref in refs}
    if (c.KIND, c.GROUP) in owner_kinds:
        return str(role) if role else None
    if via_replica_set and any(kind == "ReplicaSet" for kind, _ in owner_kinds):
        return str(role) if role else None  # instance pods are owned by the Deployment's ReplicaSet
    return None


def _entry(role: str | None, namespace: str | None, value: dict[str, Any]) -> Any:
    return {(namespace, role): pack(value)} if role and namespace else None


@kopf.index("", "v1", "pods", labels={c.ROLE_LABEL: kopf.PRESENT})
def instances_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body, via_replica_set=True), namespace, trim_pod(body))


@kopf.index("", "v1", "pods", labels={c.ROLE_LABEL: kopf.PRESENT})
def instances_by_node(body: kopf.Body, **_: Any) -> Any:
    node = body.spec.get("nodeName")
    if not node or owning_role(body, via_replica_set=True) is None:
        return None
    return {str(node): pack(trim_pod_for_node(body))}


@kopf.index("", "v1", "pods", labels={c.RESOLVER_FOR_LABEL: kopf.PRESENT})
def resolvers_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body), namespace, trim_pod(body))


# One function, one index per watched kind of child (kopf keys an index by its handler).
@kopf.index("apps", "v1", "deployments", labels={c.ROLE_LABEL: kopf.PRESENT})
def deployments_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body), namespace, trim_child(body))


@kopf.index("", "v1", "services", labels={c.ROLE_LABEL: kopf.PRESENT})
def services_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body), namespace, trim_child(body))


@kopf.index("networking.k8s.io", "v1", "networkpolicies", labels={c.ROLE_LABEL: kopf.PRESENT})
def policies_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body), namespace, trim_child(body))


@kopf.index("", "v1", "configmaps", labels={c.ROLE_LABEL: kopf.PRESENT})
def configmaps_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body), namespace, trim_child(body))


@kopf.index("policy", "v1", "poddisruptionbudgets", labels={c.ROLE_LABEL: kopf.PRESENT})
def budgets_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _entry(owning_role(body), namespace, trim_child(body))


# By the plural of the resource each one indexes.
CHILD_INDEXES: dict[str, Callable[..., Any]] = {
    "deployments": deployments_by_role,
    "services": services_by_role,
    "networkpolicies": policies_by_role,
    "configmaps": configmaps_by_role,
    "poddisruptionbudgets": budgets_by_role,
}


def _kwarg(index: Callable[..., Any]) -> str:
    """The keyword kopf passes an index by: its handler id, the function's qualified name."""
    return index.__qualname__


@dataclass(frozen=True)
class RoleIndexes:
    instances: Entries
    resolvers: Entries
    children: tuple[Entries, ...]
    by_node: kopf.Index[str, str]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> RoleIndexes:
        return cls(
            instances=kwargs[_kwarg(instances_by_role)],
            resolvers=kwargs[_kwarg(resolvers_by_role)],
            children=tuple(kwargs[_kwarg(index)] for index in CHILD_INDEXES.values()),
            by_node=kwargs[_kwarg(instances_by_node)],
        )

    def pods_on_node(self, node: str) -> list[dict[str, Any]]:
        return [unpack(entry) for entry in self.by_node.get(node, [])]

    def snapshot(self, namespace: str, name: str) -> Observed:
        key = (namespace, name)
        return Observed.of(
            list(self.instances.get(key, [])),
            list(self.resolvers.get(key, [])),
            [entry for index in self.children for entry in index.get(key, [])],
        )


class IndexedObjects:
    """kopf hands its indexes only to handlers; the first handler to run leaves them here.

    One instance, made at startup and shared by reference: kopf gives every object its own shallow
    copy of the memo, so an attribute set on `memo` in a handler would not reach the others.
    """

    def __init__(self) -> None:
        self.indexes: RoleIndexes | None = None

    def remember(self, kwargs: Mapping[str, Any]) -> None:
        if self.indexes is None:
            self.indexes = RoleIndexes.from_kwargs(kwargs)

    def _known(self) -> RoleIndexes:
        if self.indexes is None:
            raise RuntimeError("no handler has run yet: kopf's indexes are not known")
        return self.indexes

    def snapshot(self, namespace: str, name: str) -> Observed:
        return self._known().snapshot(namespace, name)

    def pods_on_node(self, node: str) -> list[dict[str, Any]]:
        return self._known().pods_on_node(node)
