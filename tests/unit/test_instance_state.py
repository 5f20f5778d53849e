"""Instance states, rotation and role status from realistic pod dicts."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from vmrole_operator import constants as c
from vmrole_operator.instance_state import (
    InstanceState,
    auto_start_deadline,
    compute_status,
    format_time,
    in_rotation,
    instance_state,
    main_container_started_at,
    merge_conditions,
    parse_time,
    seconds_to_next_deadline,
    setup_finished,
)
from vmrole_operator.models import VMRole, VMRoleStatus, parse_role

from . import pod_fixtures as pf

NOW = pf.at(60)  # a minute after creation: inside the auto-start deadline
LATER = pf.at(100)


def role(**spec: Any) -> VMRole:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "generation": 2},
        "spec": {"image": "localhost/vmrole-test/web:1", "instances": 3, **spec},
    }
    return parse_role(body)


def deployment(
    *, generation: int = 2, observed: int = 2, replicas: int = 3, updated: int = 3
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": 0,
            "availableReplicas": 0,
        },
    }


# --- every state, from a realistic pod ---

CASES: list[tuple[Callable[[], dict[str, Any]], Any, InstanceState, str | None]] = [
    (pf.unschedulable, NOW, InstanceState.CREATING_VM, pf.ts(0)),
    (pf.pulling_image, NOW, InstanceState.CREATING_VM, pf.ts(0)),
    (pf.image_pull_backoff_no_setup, NOW, InstanceState.CREATING_VM, pf.ts(0)),
    (pf.setup_running, NOW, InstanceState.STARTING_VM, pf.ts(3)),
    (pf.setup_done_role_creating, NOW, InstanceState.STARTING_VM, pf.ts(6)),
    (pf.setup_failed, NOW, InstanceState.FAILED_STARTING_VM, pf.ts(4)),
    (pf.setup_crash_loop, NOW, InstanceState.FAILED_STARTING_VM, pf.ts(31)),
    (pf.role_starting, NOW, InstanceState.STARTING_ROLE, pf.ts(7)),
    (pf.role_starting_extra_check_pending, NOW, InstanceState.STARTING_ROLE, pf.ts(7)),
    (pf.role_ready, NOW, InstanceState.READY_ROLE, pf.ts(13)),
    (pf.role_ready_with_check, NOW, InstanceState.READY_ROLE, pf.ts(13)),
    (pf.role_unresponsive, pf.at(200), InstanceState.UNRESPONSIVE_ROLE, pf.ts(120)),
    (pf.role_busy, pf.at(100), InstanceState.BUSY_ROLE, pf.ts(60)),
    (pf.role_busy_not_yet_out, pf.at(100), InstanceState.BUSY_ROLE, pf.ts(7)),
    (pf.role_busy_cleared_still_out, pf.at(100), InstanceState.BUSY_ROLE, pf.ts(60)),
    (pf.role_crash_loop, pf.at(100), InstanceState.FAILED_STARTING_ROLE, pf.ts(51)),
    (pf.role_config_error, NOW, InstanceState.FAILED_STARTING_ROLE, pf.ts(0)),
    (pf.role_restarting, pf.at(100), InstanceState.RESTARTING_ROLE, pf.ts(100)),
    (pf.role_restarted, pf.at(105), InstanceState.STARTING_ROLE, pf.ts(102)),
    (
        pf.role_auto_start_timed_out,
        pf.at(7 + pf.TIMEOUT_S + 1),
        InstanceState.FAILED_STARTING_ROLE,
        pf.ts(307),
    ),
    (pf.terminating, pf.at(210), InstanceState.STOPPING_ROLE, pf.ts(200)),
    (pf.evicted, pf.at(600), InstanceState.STOPPING_ROLE, pf.ts(500)),
]


@pytest.mark.parametrize(
    ("make", "now", "expected", "since"), CASES, ids=[case[0].__name__ for case in CASES]
)
def test_instance_state(
    make: Callable[[], dict[str, Any]], now: Any, expected: InstanceState, since: str | None
) -> None:
    state, since_dt, message = instance_state(make(), now, pf.TIMEOUT_S)
    assert state is expected
    assert since_dt is not None
    assert format_time(since_dt) == since
    assert message


def test_every_state_is_reachable_from_a_fixture() -> None:
    assert {case[2] for case in CASES} == set(InstanceState)


def test_state_vocabulary_is_the_contract() -> None:
    assert [s.value for s in InstanceState] == [
        "CreatingVM",
        "StartingVM",
        "StartingRole",
        "ReadyRole",
        "BusyRole",
        "RestartingRole",
        "StoppingRole",
        "FailedStartingVM",
        "FailedStartingRole",
        "UnresponsiveRole",
    ]


def test_auto_start_deadline_is_exclusive() -> None:
    pod = pf.role_starting(started=7)
    assert instance_state(pod, pf.at(7 + pf.TIMEOUT_S), pf.TIMEOUT_S)[0] is InstanceState.STARTING_ROLE
    assert instance_state(pod, pf.at(8 + pf.TIMEOUT_S), pf.TIMEOUT_S)[0] is InstanceState.FAILED_STARTING_ROLE


def test_deadline_restarts_with_the_container() -> None:
    # After a restart at second 102 the deadline counts from 102, not from the first start.
    pod = pf.role_restarted()
    assert instance_state(pod, pf.at(102 + pf.TIMEOUT_S), pf.TIMEOUT_S)[0] is InstanceState.STARTING_ROLE
    assert (
        instance_state(pod, pf.at(103 + pf.TIMEOUT_S), pf.TIMEOUT_S)[0] is InstanceState.FAILED_STARTING_ROLE
    )


def test_messages_carry_the_cause() -> None:
    assert "Unschedulable" in instance_state(pf.unschedulable(), NOW, pf.TIMEOUT_S)[2]
    assert "exit code 2" in instance_state(pf.setup_crash_loop(), NOW, pf.TIMEOUT_S)[2]
    assert "exit code 1" in instance_state(pf.role_crash_loop(), NOW, pf.TIMEOUT_S)[2]
    assert instance_state(pf.role_starting(), NOW, pf.TIMEOUT_S, "health")[2].endswith(": health")
    assert instance_state(pf.role_starting_extra_check_pending(), NOW, pf.TIMEOUT_S, "health")[2].endswith(
        ": api"
    )
    assert 'secret "db" not found' in instance_state(pf.role_config_error(), NOW, pf.TIMEOUT_S)[2]
    assert "Evicted" in instance_state(pf.evicted(), pf.at(600), pf.TIMEOUT_S)[2]


def test_setup_retry_after_failure_is_starting_vm() -> None:
    pod = pf.set_setup(pf.setup_running(), pf.running(40), last_state=pf.terminated(1, 30, 31), restarts=1)
    state, since, message = instance_state(pod, NOW, pf.TIMEOUT_S)
    assert state is InstanceState.STARTING_VM
    assert since == pf.at(40)
    assert "attempt 2" in message


def test_terminating_wins_over_everything() -> None:
    pod = pf.role_crash_loop()
    pod["metadata"]["deletionTimestamp"] = pf.ts(130)
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    assert instance_state(pod, pf.at(110), pf.TIMEOUT_S)[:2] == (InstanceState.STOPPING_ROLE, pf.at(100))


def test_busy_false_is_not_busy() -> None:
    pod = pf.role_ready()
    pod["metadata"]["annotations"] = {c.BUSY_ANNOTATION: "false"}
    assert instance_state(pod, NOW, pf.TIMEOUT_S)[0] is InstanceState.READY_ROLE


# --- accessors, rotation and deadlines ---


def test_in_rotation_needs_kubelet_ready_and_the_label() -> None:
    assert in_rotation(pf.role_ready())
    assert in_rotation(pf.role_ready_with_check())
    assert not in_rotation(pf.role_starting())
    assert not in_rotation(pf.role_starting_extra_check_pending())  # main ready, one check not
    assert not in_rotation(pf.role_busy())  # Ready, but taken out
    assert not in_rotation(pf.terminating())
    assert not in_rotation(pf.make_pod(main=pf.running(7), ready=(True, 13), rotation=None))


def test_a_broken_check_container_fails_the_start_at_once() -> None:
    pod = pf.role_starting_extra_check_pending()
    pod["status"]["containerStatuses"][1]["state"] = pf.waiting("ErrImageNeverPull", "image not present")
    state, _, message = instance_state(pod, NOW, pf.TIMEOUT_S)
    assert state is InstanceState.FAILED_STARTING_ROLE
    assert "check-api" in message
    assert "ErrImageNeverPull" in message


def test_auto_start_deadline_only_while_waiting_for_checks() -> None:
    assert auto_start_deadline(pf.role_starting(started=7), 30) == pf.at(37)
    assert auto_start_deadline(pf.role_restarted(), 30) == pf.at(132)
    assert auto_start_deadline(pf.role_ready(), 30) is None
    assert auto_start_deadline(pf.role_unresponsive(), 30) is None  # passed once in this run
    assert auto_start_deadline(pf.setup_running(), 30) is None
    assert auto_start_deadline(pf.role_crash_loop(), 30) is None


def test_seconds_to_next_deadline_is_the_earliest_future_one() -> None:
    r = role(autoStartTimeoutSeconds=30)
    pods = [pf.role_starting(started=7), pf.with_name(pf.role_starting(started=20), "b"), pf.role_ready()]
    assert seconds_to_next_deadline(r, pods, pf.at(10)) == 28.0  # 37 - 10, plus a second
    assert seconds_to_next_deadline(r, pods, pf.at(40)) == 11.0  # 37 passed; 50 - 40 + 1
    assert seconds_to_next_deadline(r, pods, pf.at(51)) is None
    assert seconds_to_next_deadline(r, [pf.role_ready()], pf.at(10)) is None


def test_main_container_started_at() -> None:
    assert main_container_started_at(pf.role_ready()) == pf.at(7)
    assert main_container_started_at(pf.setup_running()) is None
    assert main_container_started_at(pf.role_crash_loop()) is None


def test_setup_finished() -> None:
    assert setup_finished(pf.role_config_error())  # no setup container at all
    assert setup_finished(pf.setup_done_role_creating())
    assert not setup_finished(pf.setup_running())
    assert not setup_finished(pf.setup_failed())
    assert not setup_finished(pf.setup_crash_loop())
    assert not setup_finished(pf.pulling_image())


def test_time_round_trip() -> None:
    assert parse_time("2026-11-22T10:00:00Z") == pf.T0
    assert parse_time("2026-11-22T10:00:00.123456Z") == pf.T0 + timedelta(microseconds=123456)
    assert parse_time(None) is None
    assert parse_time("yesterday") is None
    assert format_time(pf.T0 + timedelta(microseconds=999)) == "2026-11-22T10:00:00Z"


# --- role status ---


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
        "name": "web-7d9c5b6f4-aaaaa",
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
    assert set(conds) == {"Available", "Progressing", "Degraded"}
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
