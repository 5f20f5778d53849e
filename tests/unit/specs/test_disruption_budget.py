"""The PodDisruptionBudget: holds evictions until a replacement serves; maxUnavailable without room."""

from __future__ import annotations

from tests.support.role_bodies import minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.disruption_budget import build_disruption_budget


def test_with_room_no_eviction_goes_until_there_is_one_instance_more_than_asked() -> None:
    budget = build_disruption_budget(parse_role(minimal_body(instances=3)))
    assert (budget["apiVersion"], budget["kind"]) == ("policy/v1", "PodDisruptionBudget")
    assert budget["metadata"]["name"] == "web"
    assert budget["metadata"]["labels"][c.ROLE_LABEL] == "web"
    assert budget["spec"]["minAvailable"] == 3
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_it_counts_victims_still_serving_but_not_instances_taken_out_to_go() -> None:
    selector = build_disruption_budget(parse_role(minimal_body()))["spec"]["selector"]
    # No pool label: a reimage victim still serving must hold the drain too.
    assert selector["matchLabels"] == {c.ROLE_LABEL: "web"}
    assert selector["matchExpressions"] == [
        {"key": c.IN_ROTATION_LABEL, "operator": "NotIn", "values": ["reimage", "reboot"]}
    ]


def test_without_room_it_falls_back_to_max_unavailable() -> None:
    role = parse_role(minimal_body(instances=4, upgrade={"maxUnavailable": 2, "maxSurge": 1}))
    assert build_disruption_budget(role, room_to_surge=False)["spec"]["minAvailable"] == 2


def test_the_fallback_never_goes_below_zero() -> None:
    role = parse_role(minimal_body(instances=1, upgrade={"maxUnavailable": 3, "maxSurge": 0}))
    assert build_disruption_budget(role, room_to_surge=False)["spec"]["minAvailable"] == 0


def test_a_budget_that_holds_nothing_back_when_the_role_is_empty() -> None:
    assert build_disruption_budget(parse_role(minimal_body(instances=0)))["spec"]["minAvailable"] == 0
