"""Fault domains and host loss in the pod template: spread per spec.spread, node-loss tolerations."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.role_bodies import minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.deployment import build_deployment
from vmrole_operator.specs.placement import HOSTNAME_KEY, ZONE_KEY, tolerations, topology_spread

from .roles import PINNED


def spread_of(**spec: Any) -> list[dict[str, Any]] | None:
    return topology_spread(parse_role(minimal_body(**spec)))


def by_key(constraints: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    assert constraints is not None
    return {con["topologyKey"]: con for con in constraints}


def test_by_default_instances_prefer_separate_nodes_and_zones() -> None:
    constraints = by_key(spread_of(instances=3))
    assert set(constraints) == {HOSTNAME_KEY, ZONE_KEY}
    for con in constraints.values():
        assert con["whenUnsatisfiable"] == "ScheduleAnyway"
        assert con["maxSkew"] == 1
        # Only the Deployment's own pool counts, per revision; tainted nodes are no fault domain.
        assert con["labelSelector"] == {"matchLabels": {c.ROLE_LABEL: "web", c.IN_POOL_LABEL: "true"}}
        assert con["matchLabelKeys"] == ["pod-template-hash"]
        assert con["nodeTaintsPolicy"] == "Honor"
        assert "minDomains" not in con


def test_required_puts_every_instance_on_a_node_of_its_own() -> None:
    constraints = by_key(spread_of(instances=4, spread="Required"))
    host = constraints[HOSTNAME_KEY]
    assert host["whenUnsatisfiable"] == "DoNotSchedule"
    assert host["minDomains"] == 4  # fewer usable nodes than instances: one each, the rest Pending
    assert constraints[ZONE_KEY]["whenUnsatisfiable"] == "ScheduleAnyway"  # zones stay a preference


def test_required_with_no_instances_needs_no_min_domains() -> None:
    # minDomains must be at least 1: a role scaled to zero keeps only the preference.
    assert "minDomains" not in by_key(spread_of(instances=0, spread="Required"))[HOSTNAME_KEY]


def test_off_sets_an_empty_list_so_turning_it_off_is_seen_as_a_change() -> None:
    assert spread_of(spread="Off") is None
    template = build_deployment(parse_role(minimal_body(spread="Off")), PINNED, 1)["spec"]["template"]
    assert template["spec"]["topologySpreadConstraints"] == []


def test_the_deployment_carries_the_spread() -> None:
    role = parse_role(minimal_body(instances=2))
    pod_spec = build_deployment(role, PINNED, 2)["spec"]["template"]["spec"]
    assert pod_spec["topologySpreadConstraints"] == topology_spread(role)


def test_an_instance_leaves_a_lost_node_after_node_loss_seconds() -> None:
    got = tolerations(parse_role(minimal_body(healing={"nodeLossSeconds": 12})))
    assert got == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 12,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 12,
        },
    ]


def test_the_default_is_thirty_seconds_not_kubernetes_three_hundred() -> None:
    got = tolerations(parse_role(minimal_body()))
    assert {t["tolerationSeconds"] for t in got} == {30}


@pytest.mark.parametrize(
    ("users", "kept_ours"),
    [
        # The user's own toleration of a node-loss taint wins; ours covers only the other one.
        (
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
            ["node.kubernetes.io/not-ready"],
        ),
        ({"key": "node.kubernetes.io/not-ready", "operator": "Exists"}, ["node.kubernetes.io/unreachable"]),
        ({"operator": "Exists"}, []),  # tolerates every taint
        ({"operator": "Exists", "effect": "NoExecute"}, []),
        # Not covering: another effect, another key, a value the taint does not have.
        (
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
            ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"],
        ),
        (
            {"key": "example.com/gpu", "operator": "Exists"},
            ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"],
        ),
        (
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Equal",
                "value": "x",
                "effect": "NoExecute",
            },
            ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"],
        ),
    ],
)
def test_a_users_toleration_of_node_loss_is_respected(users: dict[str, Any], kept_ours: list[str]) -> None:
    got = tolerations(parse_role(minimal_body(tolerations=[users])))
    assert got[0] == users
    assert [t["key"] for t in got[1:]] == kept_ours
    assert all(t["tolerationSeconds"] == 30 for t in got[1:])
