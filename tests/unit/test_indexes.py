"""kopf indexes: which objects count as a role's, and typed access derived from the index functions."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from tests.support.pods import make_pod
from vmrole_operator import constants as c
from vmrole_operator.indexes import (
    CHILD_INDEXES,
    IndexedObjects,
    RoleIndexes,
    instances_by_role,
    owning_role,
    resolvers_by_role,
)
from vmrole_operator.state.observed import pack


def body(
    labels: dict[str, str], owner_kind: str | None, api_version: str = "vmrole.dev/v1alpha1"
) -> kopf.Body:
    refs = [{"kind": owner_kind, "apiVersion": api_version, "name": "x", "uid": "u"}] if owner_kind else []
    return kopf.Body(
        {"metadata": {"name": "o", "namespace": "ns", "labels": labels, "ownerReferences": refs}}
    )


@pytest.mark.parametrize(
    ("labels", "owner", "via_rs", "expected"),
    [
        ({c.ROLE_LABEL: "web"}, "VMRole", False, "web"),
        ({c.RESOLVER_FOR_LABEL: "web"}, "VMRole", False, "web"),
        ({c.ROLE_LABEL: "web"}, "ReplicaSet", True, "web"),  # an instance pod
        ({c.ROLE_LABEL: "web"}, "ReplicaSet", False, None),  # a child must be the role's own
        ({c.ROLE_LABEL: "web"}, None, True, None),  # labelled by hand, owned by nothing
        ({}, "VMRole", False, None),
    ],
)
def test_owning_role(labels: dict[str, str], owner: str | None, via_rs: bool, expected: str | None) -> None:
    assert owning_role(body(labels, owner), via_replica_set=via_rs) == expected


def test_a_lookalike_kind_of_another_group_is_not_a_role() -> None:
    assert owning_role(body({c.ROLE_LABEL: "web"}, "VMRole", api_version="example.com/v1")) is None


def test_index_entries_are_packed_and_keyed_by_role() -> None:
    pod = make_pod()
    entry = instances_by_role(body=kopf.Body(pod), namespace="default")
    assert list(entry) == [("default", "web")]
    assert isinstance(entry[("default", "web")], str)
    assert resolvers_by_role(body=kopf.Body(pod), namespace="default") is None


def test_snapshot_reads_the_indexes_kopf_passed_by_their_functions_names() -> None:
    key = ("ns", "web")
    deployment = pack({"kind": "Deployment", "metadata": {"name": "web"}})
    kwargs: dict[str, Any] = {
        "instances_by_role": {key: [pack({"metadata": {"name": "web-a"}})]},
        "resolvers_by_role": {},
        "instances_by_node": {"node-1": [pack({"metadata": {"name": "web-a"}})]},
        **{index.__name__: {} for index in CHILD_INDEXES.values()},
        "deployments_by_role": {key: [deployment]},
        "unrelated": object(),
    }
    indexed = IndexedObjects()
    with pytest.raises(RuntimeError, match="no handler has run yet"):
        indexed.snapshot("ns", "web")
    indexed.remember(kwargs)
    observed = indexed.snapshot("ns", "web")
    assert [p["metadata"]["name"] for p in observed.pods] == ["web-a"]
    assert observed.child("Deployment", "web") == {"kind": "Deployment", "metadata": {"name": "web"}}
    assert RoleIndexes.from_kwargs(kwargs).snapshot("ns", "other").pods == []
    assert [p["metadata"]["name"] for p in indexed.pods_on_node("node-1")] == ["web-a"]
    assert indexed.pods_on_node("node-2") == []
