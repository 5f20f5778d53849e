"""Reading request annotations and recorded progress: what the operator decides from a pod alone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import pods as pf
from vmrole_operator import constants as c
from vmrole_operator.state.requests import (
    pending_reboot,
    pending_reimage,
    reboot_in_flight,
    rebooted_image,
    request_problems,
    role_reimage_token,
    rotation_wanted,
)


def annotated(pod: dict[str, Any], **annotations: str) -> dict[str, Any]:
    pod["metadata"].setdefault("annotations", {}).update(annotations)
    return pod


def test_pending_reimage_ends_with_the_pod() -> None:
    pod = annotated(pf.role_ready(), **{c.REIMAGE_ANNOTATION: "t-1"})
    assert pending_reimage(pod) == "t-1"
    pod["metadata"]["deletionTimestamp"] = pf.ts(100)
    assert pending_reimage(pod) is None
    assert pending_reimage(annotated(pf.role_ready(), **{c.REIMAGE_ANNOTATION: "not a token"})) is None


def test_reboot_is_pending_until_its_token_is_recorded_then_in_flight_until_the_restart() -> None:
    pod = annotated(pf.role_ready(), **{c.REBOOT_ANNOTATION: "r-1"})
    assert pending_reboot(pod) == "r-1"
    assert not reboot_in_flight(pod)
    annotated(pod, **{c.REBOOT_DONE_ANNOTATION: "r-1", c.REBOOT_RESTARTS_ANNOTATION: "0"})
    assert pending_reboot(pod) is None
    assert reboot_in_flight(pod)  # restartCount is still 0
    pod["status"]["containerStatuses"][0]["restartCount"] = 1
    assert not reboot_in_flight(pod)
    annotated(pod, **{c.REBOOT_ANNOTATION: "r-2"})  # a new token is a new request
    assert pending_reboot(pod) == "r-2"


@pytest.mark.parametrize(
    ("annotations", "wanted"),
    [
        ({}, True),
        ({c.BUSY_ANNOTATION: "true"}, False),
        ({c.BUSY_ANNOTATION: "false"}, True),
        ({c.BUSY_ANNOTATION: "maybe"}, True),  # refused with a Warning, changes nothing
        ({c.REIMAGE_ANNOTATION: "t"}, None),  # the reimage decides
        ({c.REBOOT_ANNOTATION: "r"}, None),  # the reboot decides
        ({c.REBOOT_ANNOTATION: "r", c.REBOOT_DONE_ANNOTATION: "r", c.REBOOT_RESTARTS_ANNOTATION: "0"}, None),
        ({c.REBOOT_ANNOTATION: "r", c.REBOOT_DONE_ANNOTATION: "r", c.REBOOT_RESTARTS_ANNOTATION: "-1"}, True),
        ({c.BUSY_ANNOTATION: "true", c.REIMAGE_ANNOTATION: "t"}, None),
    ],
)
def test_rotation_wanted(annotations: dict[str, str], wanted: bool | None) -> None:
    assert rotation_wanted(annotated(pf.role_ready(), **annotations)) is wanted


def test_a_terminating_instance_is_left_alone() -> None:
    assert rotation_wanted(pf.terminating()) is None


@pytest.mark.parametrize(
    ("image", "rebooted"),
    [
        ("r/web@sha256:" + "a" * 64, "r/web:vmrole-reboot@sha256:" + "a" * 64),
        ("r/web:vmrole-reboot@sha256:" + "a" * 64, "r/web@sha256:" + "a" * 64),
        ("host:5000/web@sha256:" + "b" * 64, "host:5000/web:vmrole-reboot@sha256:" + "b" * 64),
    ],
)
def test_rebooted_image_toggles_a_tag_on_the_same_digest(image: str, rebooted: str) -> None:
    assert rebooted_image(image) == rebooted
    assert rebooted_image(rebooted) == image


def test_rebooted_image_needs_a_digest() -> None:
    with pytest.raises(ValueError, match="not pinned by digest"):
        rebooted_image("r/web:1")


def test_request_problems_name_the_annotation() -> None:
    pod = annotated(pf.role_ready(), **{c.REIMAGE_ANNOTATION: "a b", c.BUSY_ANNOTATION: "yes"})
    problems = request_problems(pod, pod=True)
    assert any(c.REIMAGE_ANNOTATION in p for p in problems)
    assert any(c.BUSY_ANNOTATION in p for p in problems)
    role = {"metadata": {"annotations": {c.BUSY_ANNOTATION: "true", c.REIMAGE_ANNOTATION: "ok-1"}}}
    assert request_problems(role, pod=False) == [
        f"{c.BUSY_ANNOTATION} applies to an instance pod, not to a VMRole"
    ]
    assert role_reimage_token(role) == "ok-1"
    assert request_problems(pf.role_ready(), pod=True) == []
