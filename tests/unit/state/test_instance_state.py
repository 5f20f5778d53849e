"""Instance states and rotation from realistic pod dicts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.support import pods as pf
from vmrole_operator import constants as c
from vmrole_operator.clock import format_time, parse_time
from vmrole_operator.state.instance_state import (
    InstanceState,
    auto_start_deadline,
    in_rotation,
    instance_state,
    main_container_started_at,
    seconds_to_next_deadline,
    setup_finished,
)

from .objects import role

NOW = pf.at(60)  # a minute after creation: inside the auto-start deadline
LATER = pf.at(100)


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
