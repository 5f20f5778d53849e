"""Which VMRole events ask for a reconcile: not the echo of the operator's own status writes."""

from __future__ import annotations

import copy
from typing import Any

from vmrole_operator.state.role_changes import RoleChanges

KEY = ("ns", "web")


def role(**meta: Any) -> dict[str, Any]:
    metadata = {"name": "web", "namespace": "ns", "uid": "u-1", "generation": 1, "resourceVersion": "10"}
    return {"metadata": {**metadata, **meta}, "spec": {"instances": 1}, "status": {}}


def test_the_first_sight_of_a_role_asks_for_a_reconcile_and_an_echo_does_not() -> None:
    changes = RoleChanges()
    body = role()
    assert changes.changed(KEY, body)
    echo = copy.deepcopy(body)
    echo["metadata"]["resourceVersion"] = "11"
    echo["status"] = {"readyReplicas": 1, "conditions": [{"type": "Available"}]}
    assert not changes.changed(KEY, echo)
    assert len(changes) == 1


def test_spec_labels_annotations_deletion_and_a_new_incarnation_each_ask() -> None:
    changes = RoleChanges()
    assert changes.changed(KEY, role())
    assert changes.changed(KEY, role(generation=2))
    assert changes.changed(KEY, role(generation=2, labels={"team": "shop"}))
    annotated = role(generation=2, labels={"team": "shop"}, annotations={"vmrole.dev/reimage": "r-1"})
    assert changes.changed(KEY, annotated)
    assert not changes.changed(KEY, copy.deepcopy(annotated))
    assert changes.changed(
        KEY, {**annotated, "metadata": {**annotated["metadata"], "deletionTimestamp": "t"}}
    )
    assert changes.changed(KEY, role(uid="u-2"))


def test_a_forgotten_role_is_new_again() -> None:
    changes = RoleChanges()
    assert changes.changed(KEY, role())
    changes.forget(KEY)
    assert changes.changed(KEY, role())
    assert changes.changed(("ns", "other"), role())
