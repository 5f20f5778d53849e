"""Which instances the platform reimages by itself, how often, and reimage-all rounds: a table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.support import pods as pf
from vmrole_operator import constants as c
from vmrole_operator.clock import format_time
from vmrole_operator.state.healing import (
    heal_reason,
    heal_token,
    plan_heals,
    round_complete,
    start_round,
    unrequested_heals,
)

from .objects import role

LATE = pf.at(7 + pf.TIMEOUT_S + 60)  # past the auto-start deadline of a pod started at second 7


def crash_loop(restarts: int) -> dict[str, Any]:
    pod = pf.role_crash_loop()
    pod["status"]["containerStatuses"][0]["restartCount"] = restarts
    return pod


def setup_crash_loop(restarts: int) -> dict[str, Any]:
    pod = pf.setup_crash_loop()
    pod["status"]["initContainerStatuses"][0]["restartCount"] = restarts
    return pod


def reimage_requested(pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["annotations"] = {c.REIMAGE_ANNOTATION: "user-1"}
    return pod


HEALS: list[tuple[str, Callable[[], dict[str, Any]], datetime, str | None]] = [
    ("crash loop at the threshold", lambda: crash_loop(3), pf.at(100), "CrashLooping"),
    ("crash loop below the threshold", lambda: crash_loop(2), pf.at(100), None),
    ("setup failing at the threshold", lambda: setup_crash_loop(3), pf.at(100), "SetupFailing"),
    ("setup failing below the threshold", lambda: setup_crash_loop(1), pf.at(100), None),
    ("auto-start deadline passed", pf.role_starting, LATE, "AutoStartTimeout"),
    ("auto-start still in time", pf.role_starting, pf.at(60), None),
    ("ready", pf.role_ready, LATE, None),
    ("unresponsive after being ready", pf.role_unresponsive, LATE, None),
    ("busy", pf.role_busy, LATE, None),
    ("terminating", pf.terminating, LATE, None),
    ("a reimage already requested", lambda: reimage_requested(crash_loop(5)), pf.at(100), None),
    ("unschedulable", pf.unschedulable, LATE, None),
]


@pytest.mark.parametrize(("case", "make", "now", "reason"), HEALS, ids=[h[0] for h in HEALS])
def test_heal_reason(
    case: str, make: Callable[[], dict[str, Any]], now: datetime, reason: str | None
) -> None:
    assert heal_reason(make(), role(healing={"restartThreshold": 3}), now) == reason


def test_healing_switched_off_heals_nothing_but_keeps_the_record() -> None:
    record = {"pod": "a", "uid": "u-a", "reason": "CrashLooping", "at": format_time(pf.at(50))}
    plan = plan_heals(role(healing={"enabled": False}), [crash_loop(9)], [record], pf.at(100))
    assert plan.new == []
    assert plan.recent == [record]


def test_the_hourly_budget_counts_heals_of_the_last_hour_only() -> None:
    r = role(healing={"restartThreshold": 1, "maxPerHour": 2})
    sick = [pf.with_name(crash_loop(3), f"web-{n}") for n in "abc"]
    for n, pod in enumerate(sick):
        pod["metadata"]["uid"] = f"u-{n}"
    old = {"pod": "gone", "uid": "u-old", "reason": "CrashLooping", "at": format_time(pf.at(-4000))}
    recent = {"pod": "web-x", "uid": "u-x", "reason": "CrashLooping", "at": format_time(pf.at(0))}
    plan = plan_heals(r, sick, [old, recent], pf.at(100))
    assert [h["pod"] for h in plan.new] == ["web-a"]  # one left in the budget; the old one expired
    assert [h["pod"] for h in plan.recent] == ["web-x", "web-a"]


def test_a_healed_pod_is_not_healed_twice() -> None:
    pod = crash_loop(9)
    record = {"pod": pod["metadata"]["name"], "uid": pod["metadata"]["uid"], "reason": "CrashLooping"}
    record["at"] = format_time(pf.at(90))
    assert plan_heals(role(), [pod], [record], pf.at(100)).new == []


def test_unrequested_heals_are_those_whose_pod_lives_without_the_request() -> None:
    pod = crash_loop(9)
    record = {
        "pod": "x",
        "uid": pod["metadata"]["uid"],
        "reason": "CrashLooping",
        "at": format_time(pf.at(90)),
    }
    assert unrequested_heals([record], [pod]) == [pod]
    assert unrequested_heals([record], [reimage_requested(crash_loop(9))]) == []
    assert unrequested_heals([record], []) == []
    assert heal_token(record) == "heal.CrashLooping.20261122T100130Z"


def test_rounds_start_once_per_token_and_complete_when_the_deployment_has_rolled() -> None:
    assert start_round(None, None, False, pf.at(0)) is None
    started = start_round(None, "t1", False, pf.at(0))
    assert started == {"token": "t1", "startedAt": pf.ts(0)}
    assert start_round(started, "t1", False, pf.at(5)) is None
    held = start_round(started, "t2", True, pf.at(5))
    assert held is not None
    assert "paused" in held["message"]

    def deployment(token: str, updated: int, ready: int, generation: int = 2) -> dict[str, Any]:
        template = {"metadata": {"annotations": {c.REIMAGE_ROUND_ANNOTATION: token}}}
        return {
            "metadata": {"generation": generation},
            "spec": {"replicas": 2, "template": template},
            "status": {
                "observedGeneration": 2,
                "updatedReplicas": updated,
                "replicas": 2,
                "readyReplicas": ready,
            },
        }

    assert round_complete(started, deployment("t1", 2, 2), paused=False)
    assert not round_complete(started, deployment("t1", 1, 2), paused=False)
    assert not round_complete(started, deployment("t1", 2, 1), paused=False)
    assert not round_complete(started, deployment("t0", 2, 2), paused=False)
    assert not round_complete(started, deployment("t1", 2, 2, generation=3), paused=False)
    assert not round_complete(started, deployment("t1", 2, 2), paused=True)
    assert not round_complete({**started, "completedAt": pf.ts(9)}, deployment("t1", 2, 2), paused=False)
