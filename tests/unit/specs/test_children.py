"""Every child together: ownership, labels, purity, never a StatefulSet."""

from __future__ import annotations

import copy

from tests.support.role_bodies import example_body, minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.children import build_children

from .roles import OWNER_UID, PINNED, owner_body


def test_build_children_are_owned_and_labelled() -> None:
    owner = owner_body()
    owner["metadata"]["labels"] = {"team": "shop", c.ROLE_LABEL: "something-else"}
    children = build_children(owner, parse_role(owner), PINNED, 3)
    assert [(ch["kind"], ch["metadata"]["name"]) for ch in children] == [
        ("ConfigMap", "web-answer-file"),
        ("ConfigMap", "web-instances"),
        ("Deployment", "web"),
        ("Service", "web"),
        ("Service", "web-internal"),
        ("NetworkPolicy", "web"),
        ("PodDisruptionBudget", "web"),
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "default"
        assert meta["labels"][c.ROLE_LABEL] == "web"  # ours wins over the owner's
        assert meta["labels"][c.MANAGED_BY_LABEL] == "vmrole-operator"
        assert meta["labels"]["team"] == "shop"
        assert "generateName" not in meta
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "vmrole.dev/v1alpha1",
                "kind": "VMRole",
                "name": "web",
                "uid": OWNER_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    # Owner labels never reach the pod template (that would roll every instance).
    assert children[2]["spec"]["template"]["metadata"]["labels"] == {
        c.ROLE_LABEL: "web",
        c.IN_POOL_LABEL: "true",
        c.IN_ROTATION_LABEL: "true",
    }
    # Each child has its own owner-reference dict.
    children[0]["metadata"]["ownerReferences"][0]["name"] = "changed"
    assert children[2]["metadata"]["ownerReferences"][0]["name"] == "web"


def test_build_children_never_a_statefulset() -> None:
    for body in (example_body(), minimal_body()):
        owner = owner_body(body)
        kinds = [child["kind"] for child in build_children(owner, parse_role(owner), PINNED, 1)]
        assert "StatefulSet" not in kinds
        assert kinds.count("Deployment") == 1


def test_minimal_role_has_a_deployment_and_its_instance_list() -> None:
    owner = owner_body(minimal_body())
    children = build_children(owner, parse_role(owner), PINNED, 1)
    assert [(child["kind"], child["metadata"]["name"]) for child in children] == [
        ("ConfigMap", "web-instances"),
        ("Deployment", "web"),
        ("PodDisruptionBudget", "web"),
    ]


def test_settings_get_a_configmap_of_their_own() -> None:
    owner = owner_body(minimal_body(settings={"greeting": "hello", "db.url": "x"}))
    children = build_children(owner, parse_role(owner), PINNED, 1, topology="web_IN_0 10.0.0.1\n")
    by_name = {child["metadata"]["name"]: child for child in children}
    assert by_name["web-settings"]["data"] == {"greeting": "hello", "db.url": "x"}
    assert by_name["web-instances"]["data"] == {"instances": "web_IN_0 10.0.0.1\n"}


def test_builders_are_pure() -> None:
    owner = owner_body()
    before = copy.deepcopy(owner)
    role = parse_role(owner)
    first = build_children(owner, role, PINNED, 3)
    second = build_children(owner, role, PINNED, 3)
    assert first == second
    assert owner == before
