"""The role status: instances, counts, conditions, carried-over records."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest

from tests.support import pods as pf
from vmrole_operator.models import VMRole, VMRoleStatus
from vmrole_operator.state.problems import Problem
from vmrole_operator.state.role_status import compute_status, merge_conditions

from .objects import deployment, role

NOW = pf.at(60)  # a minute after creation: inside the auto-start deadline
LATER = pf.at(100)


def all_pods() -> list[dict[str, Any]]:
    return [
        pf.with_name(pf.role_ready(), "web-7d9c5b6f4-aaaaa"),
        pf.with_name(pf.role_crash_loop(), "web-7d9c5b6f4-ccccc"),
        pf.with_name(pf.role_ready(), "web-7d9c5b6f4-bbbbb"),
        pf.with_name(pf.terminating(), "web-7d9c5b6f4-ddddd"),
    ]


def status_of(
    r: VMRole,
    pods: list[dict[str, Any]],
    *,
    dep: dict[str, Any] | None = None,
    pinned: str | None = pf.IMAGE,
    pinned_from: str | None = "localhost/vmrole-test/web:1",
    previous: dict[str, Any] | None = None,
    now: datetime = LATER,
) -> dict[str, Any]:
    return compute_status(
        r, pods, dep if dep is not None else deployment(), pinned, pinned_from, previous, now
    )


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cond["type"]: cond for cond in status["conditions"]}


def test_compute_status_shape() -> None:
    r = role()
    status = status_of(r, all_pods())
    assert status["observedGeneration"] == 2
    assert status["image"] == pf.IMAGE
    assert status["specImage"] == "localhost/vmrole-test/web:1"
    assert status["replicas"] == 3  # the terminating pod does not count
    assert status["readyReplicas"] == 2
    assert status["selector"] == "vmrole.dev/role=web"
    assert [i["name"] for i in status["instances"]] == sorted(i["name"] for i in status["instances"])
    by_name = {i["name"]: i for i in status["instances"]}
    assert by_name["web-7d9c5b6f4-aaaaa"] == {
        "name": "web-7d9c5b6f4-aaaaa",  # no instance name on the pod: the pod's
        "pod": "web-7d9c5b6f4-aaaaa",
        "state": "ReadyRole",
        "ready": True,
        "restarts": 0,
        "podIP": "10.88.0.7",
        "node": "n1",
        "since": pf.ts(13),
        "message": "in rotation",
    }
    assert by_name["web-7d9c5b6f4-ccccc"]["state"] == "FailedStartingRole"
    assert by_name["web-7d9c5b6f4-ccccc"]["restarts"] == 4
    assert by_name["web-7d9c5b6f4-ddddd"]["state"] == "StoppingRole"
    assert status["heals"] == 0
    assert "lastReimage" not in status
    # JSON-ready and accepted by the status model (and thus by the CRD's status schema).
    assert json.loads(json.dumps(status)) == status
    VMRoleStatus.model_validate(status)
    assert VMRoleStatus.model_validate(status).model_dump(exclude_none=True) == status


def test_conditions() -> None:
    status = status_of(role(), all_pods())
    conds = conditions(status)
    assert set(conds) == {"Available", "Progressing", "Degraded", "Schedulable"}
    assert conds["Schedulable"]["status"] == "True"
    assert conds["Available"]["status"] == "True"  # 2 ready >= 3 - maxUnavailable 1
    assert conds["Available"]["reason"] == "MinimumInstancesReady"
    assert conds["Progressing"]["status"] == "False"
    assert conds["Progressing"]["reason"] == "RolloutComplete"
    assert conds["Degraded"]["status"] == "True"
    assert "web-7d9c5b6f4-ccccc is FailedStartingRole" in conds["Degraded"]["message"]
    for cond in conds.values():
        assert cond["observedGeneration"] == 2
        assert cond["lastTransitionTime"] == pf.ts(100)
        assert cond["status"] in {"True", "False"}
        assert cond["reason"]


def test_available_needs_enough_ready_instances() -> None:
    pods = [pf.with_name(pf.role_ready(), "web-a"), pf.with_name(pf.role_starting(), "web-b")]
    conds = conditions(status_of(role(), pods, now=pf.at(60)))
    assert conds["Available"]["status"] == "False"
    assert conds["Available"]["reason"] == "InstancesUnavailable"
    assert conds["Degraded"]["status"] == "False"
    assert conds["Degraded"]["reason"] == "AllInstancesHealthy"


def test_available_needs_one_instance_even_when_max_unavailable_allows_zero() -> None:
    r = role(instances=1)
    assert conditions(status_of(r, [pf.role_starting()], now=pf.at(60)))["Available"]["status"] == "False"
    assert conditions(status_of(r, [pf.role_ready()], now=pf.at(60)))["Available"]["status"] == "True"


def test_zero_instances_is_available() -> None:
    conds = conditions(status_of(role(instances=0), [], dep=deployment(replicas=0, updated=0)))
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "RolloutComplete"


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"dep": None}, "True", "Creating"),
        ({"pinned": None, "pinned_from": None}, "True", "PinningImage"),
        ({"pinned_from": "localhost/vmrole-test/web:0"}, "True", "PinningImage"),  # spec.image changed since
        ({"dep": deployment(generation=3, observed=2)}, "True", "RollingOut"),
        ({"dep": deployment(updated=1)}, "True", "RollingOut"),
        ({"dep": deployment(replicas=4)}, "True", "RollingOut"),  # an old instance still there
        ({}, "False", "RolloutComplete"),
    ],
)
def test_progressing(kwargs: dict[str, Any], status: str, reason: str) -> None:
    r = role()
    if "dep" in kwargs and kwargs["dep"] is None:
        result = compute_status(r, [], None, pf.IMAGE, "localhost/vmrole-test/web:1", None, pf.at(100))
    else:
        result = status_of(r, [], **kwargs)
    cond = conditions(result)["Progressing"]
    assert (cond["status"], cond["reason"]) == (status, reason)


def test_paused_rollout_is_not_progressing() -> None:
    r = role(upgrade={"paused": True, "maxUnavailable": 1})
    cond = conditions(status_of(r, [], dep=deployment(updated=1)))["Progressing"]
    assert (cond["status"], cond["reason"]) == ("False", "RolloutPaused")


def test_compute_status_is_deterministic() -> None:
    r = role()
    first = status_of(r, all_pods())
    second = status_of(r, copy.deepcopy(all_pods()))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_recomputing_with_nothing_changed_is_a_fixed_point() -> None:
    # The operator feeds the written status back in as previous_status; later clocks must not
    # change a thing, or it would write the status on every event.
    r = role()
    first = status_of(r, all_pods(), now=pf.at(100))
    again = status_of(r, all_pods(), previous=first, now=pf.at(250))
    assert json.dumps(again) == json.dumps(first)


def test_transition_times_are_kept_while_status_is_unchanged() -> None:
    r = role()
    healthy = [pf.with_name(pf.role_ready(), f"web-{n}") for n in "abc"]
    first = status_of(r, healthy, now=pf.at(100))
    broken = [*healthy[:2], pf.with_name(pf.role_crash_loop(), "web-c")]
    second = status_of(r, broken, previous=first, now=pf.at(300))
    before, after = conditions(first), conditions(second)
    assert after["Degraded"]["status"] == "True"
    assert after["Degraded"]["lastTransitionTime"] == pf.ts(300)  # changed: new time
    assert after["Available"]["status"] == before["Available"]["status"] == "True"
    assert after["Available"]["lastTransitionTime"] == pf.ts(100)  # unchanged: time kept
    assert after["Progressing"]["lastTransitionTime"] == pf.ts(100)


def test_merge_conditions() -> None:
    previous = [
        {"type": "A", "status": "True", "reason": "X", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "B", "status": "True", "reason": "X", "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ]
    new = [
        {"type": "A", "status": "True", "reason": "Y", "message": "m"},
        {"type": "B", "status": "False", "reason": "Z", "message": "m"},
        {"type": "C", "status": "True", "reason": "Z", "message": "m"},
    ]
    merged = merge_conditions(previous, new, pf.at(5))
    assert [m["lastTransitionTime"] for m in merged] == ["2026-01-01T00:00:00Z", pf.ts(5), pf.ts(5)]
    assert merged[0]["reason"] == "Y"  # everything but the time comes from the new condition
    assert merge_conditions(None, new[:1], pf.at(5))[0]["lastTransitionTime"] == pf.ts(5)


def test_last_reimage_and_heals_are_carried_over() -> None:
    previous = {
        "heals": 2,
        "lastReimage": {"token": "t1", "startedAt": pf.ts(10), "completedAt": pf.ts(50)},
        "conditions": [],
    }
    status = status_of(role(), [pf.role_ready()], previous=previous)
    assert status["heals"] == 2
    assert status["lastReimage"] == previous["lastReimage"]


def test_unpinned_status_omits_image() -> None:
    status = status_of(role(), [pf.role_starting()], pinned=None, pinned_from=None)
    assert "image" not in status
    assert "specImage" not in status


def test_many_failing_instances_are_summarised() -> None:
    pods = [pf.with_name(pf.role_crash_loop(), f"web-{n:02d}") for n in range(15)]
    message = conditions(status_of(role(instances=15), pods))["Degraded"]["message"]
    assert message.count(" is FailedStartingRole") == 10
    assert message.endswith("and 5 more")


def test_schedulable_condition_says_why_and_what_a_drain_does_then() -> None:
    pending = pf.with_name(pf.unschedulable(), "web-7d9c5b6f4-zzzzz")
    status = status_of(role(spread="Required"), [pf.role_ready(), pending])
    cond = conditions(status)["Schedulable"]
    assert cond["status"] == "False"
    assert cond["reason"] == "NoRoomToSurge"
    assert "web-7d9c5b6f4-zzzzz" in cond["message"]
    assert "spec.spread Required" in cond["message"]
    assert "maxUnavailable (1) at a time" in cond["message"]
    # ...and the instance itself says what the scheduler said.
    [entry] = [i for i in status["instances"] if i["pod"] == "web-7d9c5b6f4-zzzzz"]
    assert entry["message"].startswith("not scheduled: Unschedulable")


def test_schedulable_condition_counts_every_stuck_instance() -> None:
    stuck = [pf.with_name(pf.unschedulable(), f"web-7d9c5b6f4-{n}") for n in "abc"]
    cond = conditions(status_of(role(), stuck))["Schedulable"]
    assert "(and 2 more)" in cond["message"]
    assert "spec.spread" not in cond["message"]


def test_a_judged_problem_names_the_degraded_reason_and_failing_instances_are_still_listed() -> None:
    problems = [Problem("QuotaExceeded", "instances not created: quota"), Problem("Unschedulable", "x")]
    r = role()
    degraded = conditions(compute_status(r, all_pods(), deployment(), pf.IMAGE, None, None, LATER, problems))[
        "Degraded"
    ]
    assert (degraded["status"], degraded["reason"]) == ("True", "QuotaExceeded")
    assert degraded["message"] == (
        "instances not created: quota; x; web-7d9c5b6f4-ccccc is FailedStartingRole"
    )
    healthy = [pf.with_name(pf.role_ready(), "web-7d9c5b6f4-aaaaa")]
    only = conditions(compute_status(r, healthy, deployment(), pf.IMAGE, None, None, LATER, problems[1:]))
    assert (only["Degraded"]["reason"], only["Degraded"]["message"]) == ("Unschedulable", "x")
