"""What only the operator can judge: missing answer files, unpullable images, refused and
unschedulable instances, each as a Degraded reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.support import pods as pf
from vmrole_operator import constants as c
from vmrole_operator.state.problems import (
    ANSWER_FILE_MISSING,
    IMAGE_PULL_FAILED,
    IMAGE_RESOLUTION_FAILED,
    INSTANCES_REFUSED,
    QUOTA_EXCEEDED,
    UNSCHEDULABLE,
    VOLUME_WAIT,
    Problem,
    answer_config_map,
    next_volume_deadline,
    role_problems,
    waiting_for_volumes_since,
)

from .objects import deployment, role

QUOTA_MESSAGE = (
    'pods "web-7d9c5b6f4-x2k4p" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, '
    "limited: pods=1"
)


def with_secret() -> Any:
    return role(setup={"command": ["s"], "answerFile": {"secretName": "unattend"}})


def with_config_map() -> Any:
    return role(setup={"command": ["s"], "answerFile": {"configMapName": "unattend"}})


def failing_deployment(message: str) -> dict[str, Any]:
    dep = deployment(replicas=1)
    dep["status"]["conditions"] = [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message},
    ]
    return dep


def resolver(image: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-resolve-1", "annotations": {c.RESOLVES_IMAGE_ANNOTATION: image}},
        "status": {"containerStatuses": [{"name": c.RESOLVER_CONTAINER, "imageID": "", "state": state}]},
    }


def test_a_pod_waits_for_its_volumes_from_scheduling_until_a_container_runs() -> None:
    assert waiting_for_volumes_since(pf.waiting_for_volumes()) == pf.at(0)
    for pod in (
        pf.unschedulable(),
        pf.pulling_image(),
        pf.setup_running(),
        pf.role_ready(),
        pf.terminating(),
    ):
        assert waiting_for_volumes_since(pod) is None


def test_a_missing_config_map_is_told_as_soon_as_an_instance_waits_for_it() -> None:
    r = with_config_map()
    assert answer_config_map(r) == "unattend"
    waiting = [pf.waiting_for_volumes()]
    [problem] = role_problems(r, waiting, deployment(), [], pf.at(1), config_map_missing=True)
    assert problem.reason == ANSWER_FILE_MISSING
    assert "ConfigMap unattend (spec.setup.answerFile.configMapName) does not exist" in problem.message
    # The ConfigMap is there (it is just slow), or nothing waits for it: nothing to say.
    assert role_problems(r, waiting, deployment(), [], pf.at(100)) == []
    assert role_problems(r, [pf.role_ready()], deployment(), [], pf.at(1), config_map_missing=True) == []


def test_a_missing_secret_is_judged_from_how_long_an_instance_waits_for_its_volumes() -> None:
    r = with_secret()
    waiting = [pf.waiting_for_volumes()]
    early = pf.at(0) + VOLUME_WAIT - timedelta(seconds=1)
    assert role_problems(r, waiting, deployment(), [], early) == []
    assert next_volume_deadline(r, waiting, early) == pf.at(0) + VOLUME_WAIT
    [problem] = role_problems(r, waiting, deployment(), [], pf.at(0) + VOLUME_WAIT)
    assert problem.reason == ANSWER_FILE_MISSING
    assert problem.message.startswith("Secret unattend (spec.setup.answerFile.secretName) is missing")
    assert next_volume_deadline(r, waiting, pf.at(0) + VOLUME_WAIT) is None
    # Without a Secret, every volume of an instance is optional or the operator's own: no deadline.
    assert next_volume_deadline(role(), waiting, early) is None
    assert role_problems(role(), waiting, deployment(), [], pf.at(600)) == []


def test_an_unpullable_tag_is_told_by_its_resolver_pod() -> None:
    r = role()
    failing = resolver(r.spec.image, {"waiting": {"reason": "ErrImagePull", "message": "not found"}})
    [problem] = role_problems(r, [], None, [failing], pf.at(1))
    assert problem == Problem(IMAGE_RESOLUTION_FAILED, f"spec.image {r.spec.image}: ErrImagePull: not found")
    # The resolver of an image the role no longer asks for says nothing about this one.
    stale = resolver("localhost/other:1", {"waiting": {"reason": "ErrImagePull"}})
    assert role_problems(r, [], None, [stale], pf.at(1)) == []
    pending = resolver(r.spec.image, {"waiting": {"reason": "ContainerCreating"}})
    assert role_problems(r, [], None, [pending], pf.at(1)) == []


def test_an_unpullable_digest_is_told_by_the_instances() -> None:
    pods = [pf.with_name(pf.setup_image_pull_failed(), f"web-7d9c5b6f4-{n}") for n in "abcdefg"]
    [problem] = role_problems(role(), pods, deployment(), [], pf.at(1))
    assert problem.reason == IMAGE_PULL_FAILED
    assert problem.message.startswith("web-7d9c5b6f4-a, web-7d9c5b6f4-b, ")
    assert " and 2 more: ErrImagePull: failed to pull and unpack image" in problem.message
    no_setup = pf.image_pull_backoff_no_setup()
    assert [p.reason for p in role_problems(role(), [no_setup], deployment(), [], pf.at(1))] == [
        IMAGE_PULL_FAILED
    ]


def test_a_quota_refusing_instances_is_read_from_the_deployment() -> None:
    [problem] = role_problems(role(), [], failing_deployment(QUOTA_MESSAGE), [], pf.at(1))
    assert problem == Problem(QUOTA_EXCEEDED, f"instances not created: {QUOTA_MESSAGE}")
    other = 'pods "web-x" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    [problem] = role_problems(role(), [], failing_deployment(other), [], pf.at(1))
    assert problem.reason == INSTANCES_REFUSED
    cleared = failing_deployment(QUOTA_MESSAGE)
    cleared["status"]["conditions"][1]["status"] = "False"
    assert role_problems(role(), [], cleared, [], pf.at(1)) == []


def test_a_refused_resolver_pod_is_a_refusal_too() -> None:
    [problem] = role_problems(role(), [], None, [], pf.at(1), resolver_refused=QUOTA_MESSAGE)
    assert problem == Problem(QUOTA_EXCEEDED, f"image resolver pod not created: {QUOTA_MESSAGE}")


def test_an_unschedulable_instance() -> None:
    [problem] = role_problems(role(), [pf.unschedulable()], deployment(), [], pf.at(1))
    assert problem.reason == UNSCHEDULABLE
    assert problem.message == (
        "web-7d9c5b6f4-x2k4p not scheduled: 0/1 nodes are available: 1 node(s) didn't match Pod's node "
        "affinity/selector."
    )
    deleting = pf.unschedulable()
    deleting["metadata"]["deletionTimestamp"] = pf.ts(5)
    assert role_problems(role(), [deleting], deployment(), [], pf.at(1)) == []


def test_an_unschedulable_resolver_pod_tells_before_any_instance_exists() -> None:
    r = role(nodeSelector={"disk": "ssd"})
    pending = resolver(r.spec.image, {"waiting": {"reason": "ContainerCreating"}})
    del pending["status"]["containerStatuses"]
    pending["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}
    ]
    [problem] = role_problems(r, [], None, [pending], pf.at(1))
    assert problem == Problem(UNSCHEDULABLE, "image resolver pod web-resolve-1 not scheduled: 0/1 nodes")
    pending["metadata"]["annotations"][c.RESOLVES_IMAGE_ANNOTATION] = "localhost/old:1"
    assert role_problems(r, [], None, [pending], pf.at(1)) == []


def test_the_most_specific_problem_comes_first() -> None:
    pods = [pf.unschedulable(), pf.setup_image_pull_failed(), pf.waiting_for_volumes()]
    problems = role_problems(
        with_config_map(), pods, failing_deployment(QUOTA_MESSAGE), [], pf.at(1), config_map_missing=True
    )
    assert [p.reason for p in problems] == [
        ANSWER_FILE_MISSING,
        IMAGE_PULL_FAILED,
        QUOTA_EXCEEDED,
        UNSCHEDULABLE,
    ]
