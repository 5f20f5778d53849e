"""Instance names: the lowest free number, reuse after a replacement, scale-down order, collisions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import pods as pf
from vmrole_operator import constants as c
from vmrole_operator.state.names import (
    UNNAMED_DELETION_COST,
    assign,
    deletion_cost,
    instance_name,
    instance_number,
    name_of,
    renames,
    takeovers,
)

REVISION = "7d9c5b6f4"


def pod(
    name: str,
    *,
    holds: str | None = None,
    runs_as: str | None = None,
    created: float = 0,
    revision: str = REVISION,
    ready: bool = True,
    **state: Any,
) -> dict[str, Any]:
    made = pf.make_pod(name, main=pf.running(7), ready=(ready, 13), **state)
    meta = made["metadata"]
    meta["uid"] = f"uid-{name}"
    meta["creationTimestamp"] = pf.ts(created)
    meta["labels"]["pod-template-hash"] = revision
    if holds is not None:
        meta["labels"][c.INSTANCE_LABEL] = holds
    runs_as = runs_as or holds
    if runs_as is not None:
        meta.setdefault("annotations", {})[c.INSTANCE_NAME_ANNOTATION] = runs_as
    return made


def new_pod(revision: str = REVISION) -> dict[str, Any]:
    return {"metadata": {"labels": {c.ROLE_LABEL: "web", "pod-template-hash": revision}}}


def names(role_pods: list[dict[str, Any]]) -> list[str]:
    return sorted(name_of(p) for p in role_pods)


def test_names_and_numbers() -> None:
    assert instance_name("web", 0) == "web_IN_0"
    assert instance_number("web", "web_IN_12") == 12
    for bad in ("web_IN_", "web_IN_01", "db_IN_1", "web_IN_-1", "web-IN-1", None, ""):
        assert instance_number("web", bad) is None


def test_a_new_instance_takes_the_lowest_free_number() -> None:
    assert assign("web", [], new_pod()).name == "web_IN_0"
    existing = [pod("a", holds="web_IN_0"), pod("b", holds="web_IN_2")]
    assignment = assign("web", existing, new_pod())
    assert (assignment.name, assignment.holds) == ("web_IN_1", True)
    assert assign("web", existing, new_pod(), reserved=["web_IN_1"]).name == "web_IN_3"


def test_a_replacement_takes_over_the_name_of_the_reimaged_instance() -> None:
    victim = pod("a", holds="web_IN_0", annotations={c.REIMAGE_ANNOTATION: "t-1"})
    others = [victim, pod("b", holds="web_IN_1")]
    assignment = assign("web", others, new_pod())
    assert (assignment.name, assignment.holds) == ("web_IN_0", False)  # runs as it, holds it later
    successor = pod("c", runs_as="web_IN_0", created=50, ready=False)
    assert takeovers("web", [*others, successor]) == []  # not in rotation yet: the victim still serves
    ready = pod("c", runs_as="web_IN_0", created=50)
    [takeover] = takeovers("web", [*others, ready])
    assert (takeover.name, takeover.successor, takeover.predecessor) == ("web_IN_0", ready, victim)
    # A second newcomer does not take the same name: the victim already has its successor.
    assert assign("web", [*others, ready], new_pod()).name == "web_IN_2"


@pytest.mark.parametrize(
    "gone",
    [
        {"deleting_at": 100},
        {"phase": "Failed"},  # evicted, or lost with its node, and left behind
        {"phase": "Succeeded"},
    ],
)
def test_a_pod_being_deleted_or_left_behind_passes_its_name_on(gone: dict[str, Any]) -> None:
    left = pod("a", holds="web_IN_0", **gone)
    assert assign("web", [left, pod("b", holds="web_IN_1")], new_pod()).name == "web_IN_0"
    successor = pod("c", runs_as="web_IN_0", created=200)
    [takeover] = takeovers("web", [left, successor])
    assert takeover.predecessor is left
    assert renames("web", [left, successor]) == []  # a leaving pod keeps nobody from a name


def test_a_rolling_update_replaces_the_pod_the_deployment_removes_next() -> None:
    old = [pod(f"o{n}", holds=f"web_IN_{n}", revision="old") for n in range(3)]
    assert assign("web", old, new_pod("new")).name == "web_IN_2"  # highest number goes first
    first = pod("n0", runs_as="web_IN_2", revision="new", created=30)
    assert assign("web", [*old, first], new_pod("new")).name == "web_IN_1"
    old[0] = pod("o0", holds="web_IN_0", revision="old", ready=False)  # not ready: removed before any other
    assert assign("web", [*old, first], new_pod("new")).name == "web_IN_0"


def test_the_successor_holds_at_once_when_the_name_has_no_holder() -> None:
    orphan = pod("c", runs_as="web_IN_3", ready=False)
    [takeover] = takeovers("web", [pod("a", holds="web_IN_0"), orphan])
    assert (takeover.name, takeover.predecessor) == ("web_IN_3", None)


def test_scale_down_removes_the_highest_numbers_first() -> None:
    costs = {n: deletion_cost("web", f"web_IN_{n}") for n in range(4)}
    assert sorted(costs, key=costs.__getitem__) == [3, 2, 1, 0]  # lowest cost is deleted first
    assert deletion_cost("web", None) == UNNAMED_DELETION_COST < costs[3]
    assert deletion_cost("web", "other") == UNNAMED_DELETION_COST


def test_two_holders_of_one_name_after_a_crash_the_older_keeps_it() -> None:
    older = pod("a", holds="web_IN_0", created=10)
    younger = pod("b", holds="web_IN_0", created=20)
    third = pod("c", holds="web_IN_1", created=5)
    [rename] = renames("web", [younger, older, third])
    assert rename.pod is younger
    assert (rename.name, rename.holds) == ("web_IN_2", True)
    assert "held by a" in rename.reason


def test_two_newcomers_running_as_one_name_the_older_keeps_it() -> None:
    victim = pod("a", holds="web_IN_0", annotations={c.REIMAGE_ANNOTATION: "t"})
    first = pod("b", runs_as="web_IN_0", created=30)
    second = pod("c", runs_as="web_IN_0", created=31)
    [rename] = renames("web", [victim, second, first])
    assert rename.pod is second
    assert rename.name == "web_IN_1"


def test_a_pod_made_while_the_operator_was_down_gets_a_name_as_the_webhook_would() -> None:
    named = [pod("a", holds="web_IN_0"), pod("b", holds="web_IN_1")]
    unnamed = pod("c", created=40)
    [rename] = renames("web", [*named, unnamed])
    assert (rename.pod, rename.name, rename.holds, rename.reason) == (
        unnamed,
        "web_IN_2",
        True,
        "created without a name",
    )
    replacement = pod("d", created=40)
    victim = pod("e", holds="web_IN_2", deleting_at=30)
    [rename] = renames("web", [*named, victim, replacement])
    assert (rename.name, rename.holds) == ("web_IN_2", False)  # takes over when it enters rotation


def test_several_unnamed_pods_get_distinct_names_in_creation_order() -> None:
    late, early = pod("x", created=9), pod("y", created=1)
    assigned = {r.pod["metadata"]["name"]: r.name for r in renames("web", [late, early])}
    assert assigned == {"y": "web_IN_0", "x": "web_IN_1"}


def test_the_name_shown_for_a_pod() -> None:
    assert name_of(pod("a", holds="web_IN_0")) == "web_IN_0"
    assert name_of(pod("b", runs_as="web_IN_4")) == "web_IN_4"
    assert name_of(pod("c")) == "c"
    assert names([pod("a", holds="web_IN_1"), pod("b", holds="web_IN_0")]) == ["web_IN_0", "web_IN_1"]
