"""What the operator's kopf indexes would hold for a role, computed from a FakeKube's objects with
the operator's own index functions, and the objects a role's controllers would have made."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from tests.support.fake_kube import FakeKube
from vmrole_operator import constants as c
from vmrole_operator.indexes import (
    CHILD_INDEXES,
    instances_by_role,
    resolvers_by_role,
)
from vmrole_operator.kube.api import DEPLOYMENTS, PODS, VMROLES
from vmrole_operator.state.names import assign, deletion_cost
from vmrole_operator.state.observed import Observed


def observe(kube: FakeKube, namespace: str, role: str) -> Observed:
    """The snapshot `IndexedObjects.snapshot` would give after kopf saw every object in `kube`."""
    pods: list[str] = []
    resolvers: list[str] = []
    children: list[str] = []
    for (_, plural, ns, _), obj in sorted(kube.objects.items()):
        if ns != namespace:
            continue
        body = kopf.Body(copy.deepcopy(obj))
        labels = obj["metadata"].get("labels") or {}
        found: list[tuple[list[str], Any]] = []
        if plural == "pods" and c.ROLE_LABEL in labels:
            found.append((pods, instances_by_role(body=body, namespace=ns)))
        if plural == "pods" and c.RESOLVER_FOR_LABEL in labels:
            found.append((resolvers, resolvers_by_role(body=body, namespace=ns)))
        if plural in CHILD_INDEXES and c.ROLE_LABEL in labels:
            found.append((children, CHILD_INDEXES[plural](body=body, namespace=ns)))
        for into, entry in found:
            if entry is not None and (namespace, role) in entry:
                into.append(entry[(namespace, role)])
    return Observed.of(pods, resolvers, children)


def role_object(name: str = "web", namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "localhost/vmrole-test/web:1", "instances": 2, **spec},
    }


def instance_pod(
    kube: FakeKube,
    role: dict[str, Any],
    name: str,
    *,
    ready: bool = True,
    ip: str = "10.244.0.9",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    restarts: int = 0,
    main: dict[str, Any] | None = None,
    instance: str | None = "",
) -> dict[str, Any]:
    """An instance pod as the role's ReplicaSet makes it, the admission webhook names it (`instance`:
    "" for the next free number, None for no name) and the kubelet reports it."""
    deployment = kube.stored(DEPLOYMENTS, role["metadata"]["namespace"], role["metadata"]["name"])
    template = copy.deepcopy(deployment["spec"]["template"]) if deployment else {"metadata": {}, "spec": {}}
    meta = template["metadata"]
    meta.update(name=name, namespace=role["metadata"]["namespace"])
    meta["labels"] = {**(meta.get("labels") or {}), **(labels or {})}
    meta["annotations"] = {**(meta.get("annotations") or {}), **(annotations or {})}
    if instance is not None:
        role_name = role["metadata"]["name"]
        others = kube.list(PODS, role["metadata"]["namespace"], f"{c.ROLE_LABEL}={role_name}")
        chosen = instance or assign(role_name, others, template).name
        meta["labels"][c.INSTANCE_LABEL] = chosen
        meta["annotations"][c.INSTANCE_NAME_ANNOTATION] = chosen
        meta["annotations"][c.POD_DELETION_COST_ANNOTATION] = str(deletion_cost(role_name, chosen))
    meta["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": f"{role['metadata']['name']}-abc",
            "uid": "rs-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = template["spec"]
    spec.setdefault(
        "containers", [{"name": c.MAIN_CONTAINER, "image": "localhost/vmrole-test/web@sha256:" + "a" * 64}]
    )
    spec["nodeName"] = "n1"
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "lastTransitionTime": "2026-11-28T11:00:05Z",
    }
    template["status"] = {
        "phase": "Running",
        "podIP": ip,
        "conditions": [condition],
        "containerStatuses": [
            {
                "name": c.MAIN_CONTAINER,
                "ready": ready,
                "restartCount": restarts,
                "state": main or {"running": {"startedAt": "2026-11-28T11:00:00Z"}},
            }
        ],
    }
    return kube.put(PODS, {"apiVersion": "v1", "kind": "Pod", **template})


def stored_role(kube: FakeKube, namespace: str = "ns", name: str = "web") -> dict[str, Any]:
    role = kube.stored(VMROLES, namespace, name)
    assert role is not None
    return role
