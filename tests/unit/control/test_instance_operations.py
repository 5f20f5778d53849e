"""Reimage, reboot and busy against the in-memory API, with the test playing the ReplicaSet and kubelet."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.support.fake_kube import Crash
from tests.support.instance_world import DIGEST_IMAGE, World, replacement_arrives
from vmrole_operator import constants as c
from vmrole_operator.control.instance_api import InstanceApi
from vmrole_operator.control.instance_operations import InstanceOperations
from vmrole_operator.control.reboot import RebootSteps
from vmrole_operator.control.reimage import ReimageSteps, WithdrawnReimageSteps
from vmrole_operator.control.role_reader import RoleReader
from vmrole_operator.control.rotation import RotationSteps, rotation_out_of_step
from vmrole_operator.kube.api import MERGE_PATCH, PODS, VMROLES
from vmrole_operator.state.requests import reimage_withdrawn


def test_reimage_surges_first_drains_and_deletes_the_victim_once() -> None:
    world = World()
    world.pod("web-a", ip="10.244.0.10")
    world.pod("web-b", ip="10.244.0.11")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    before = len(world.kube.writes)
    replacement_arrives(world)
    world.run(ReimageSteps(world.api, world.post).run, victim)

    assert world.stored("web-a") is None
    assert world.kube.count("delete", "pods", "web-a") == 1
    writes = [(w.verb, w.name) for w in world.kube.writes[before:] if w.resource == "pods"]
    # Out of the pool first (the ReplicaSet surges), then out of rotation, then deleted.
    assert writes == [("patch", "web-a"), ("patch", "web-a"), ("delete", "web-a")]
    assert world.clock.sleeps >= 1  # it waited for the replacement before taking the victim out
    assert world.reasons("web-a") == ["ReimageStarted", "Reimaged"]
    assert world.reasons("web") == ["ReimageStarted", "Reimaged"]


def test_the_victim_leaves_the_pool_owned_by_the_role_and_out_of_rotation_before_deletion() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    seen: list[dict[str, Any]] = []
    original_delete = world.kube.delete

    def spy(*args: Any) -> dict[str, Any]:
        seen.append(world.kube.stored(PODS, "ns", "web-a") or {})
        return original_delete(*args)

    world.kube.delete = spy  # type: ignore[method-assign]
    replacement_arrives(world)
    world.run(ReimageSteps(world.api, world.post).run, victim)
    [before_delete] = seen
    meta = before_delete["metadata"]
    assert c.IN_POOL_LABEL not in meta["labels"]
    assert meta["labels"][c.IN_ROTATION_LABEL] == "reimage"
    # The role is its controller now, in place of the ReplicaSet: `kubectl drain` evicts only pods
    # that have one, and the ReplicaSet must not adopt it back.
    [controller] = [r for r in meta["ownerReferences"] if r.get("controller")]
    assert (controller["kind"], controller["name"]) == ("VMRole", "web")
    assert c.REIMAGE_STARTED_ANNOTATION in meta["annotations"]


def test_reimage_waits_for_the_victims_endpoint_to_drain() -> None:
    world = World(
        endpoints={"input": [{"name": "http", "port": 80, "targetPort": 8080}]},
        autoStart=[{"name": "http", "tcpSocket": {"port": 8080}}],
    )
    world.pod("web-a", ip="10.244.0.10")
    world.pod("web-b", ip="10.244.0.11")
    world.pod("web-c", ip="10.244.0.12", labels={c.IN_POOL_LABEL: "true"})  # the pool is whole already
    world.serving("10.244.0.10")

    def controller(sleeps: int) -> None:
        if sleeps == 3:  # the EndpointSlice controller drops the victim a moment after the label
            world.serving()  # none ready

    world.clock.hooks.append(controller)
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    world.run(ReimageSteps(world.api, world.post).run, victim)
    assert world.stored("web-a") is None
    assert world.clock.sleeps == 3
    assert "DrainTimeout" not in world.reasons("web-a")


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_a_reimage_killed_between_any_two_steps_finishes_exactly_once(crash_after: int) -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    replacement_arrives(world)
    world.kube.crash_after(crash_after)
    with pytest.raises(Crash):
        world.run(ReimageSteps(world.api, world.post).run, victim)
    # A new operator: the pod's next event starts the steps again.
    current = world.stored("web-a")
    if current is not None:
        restarted = InstanceApi(world.kube, RoleReader(world.kube), world.clock)
        world.run(ReimageSteps(restarted, world.post).run, current)
    assert world.stored("web-a") is None
    assert world.kube.count("delete", "pods", "web-a") == 1
    assert world.stored("web-b") is not None
    assert world.stored("web-c") is not None


def test_a_reimage_never_deletes_a_newer_pod_of_the_same_name() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})

    def replaced_by_hand(sleeps: int) -> None:
        if sleeps == 1:  # someone deletes the victim; a pod of the same name comes back
            old = world.stored("web-a")
            assert old is not None
            world.kube.delete(PODS, "ns", "web-a", old["metadata"]["uid"])
            world.pod("web-a")

    world.clock.hooks.append(replaced_by_hand)
    world.run(ReimageSteps(world.api, world.post).run, victim)
    newer = world.stored("web-a")
    assert newer is not None
    assert newer["metadata"]["uid"] != victim["metadata"]["uid"]
    assert "Reimaged" not in world.reasons("web-a")


def test_a_paused_role_holds_a_reimage_until_it_is_unpaused() -> None:
    world = World(upgrade={"paused": True})
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})

    def unpause(sleeps: int) -> None:
        if sleeps == 3:
            assert world.stored("web-a") is not None  # nothing deleted while paused
            world.kube.patch(
                VMROLES, "ns", "web", {"spec": {"upgrade": {"paused": False}}}, content_type=MERGE_PATCH
            )

    world.clock.hooks.append(unpause)
    replacement_arrives(world, after_sleeps=4)
    world.run(ReimageSteps(world.api, world.post).run, victim)
    assert world.stored("web-a") is None
    assert world.reasons("web-a").count("ReimageHeld") == 1


def test_without_room_to_surge_the_victim_goes_after_the_deadline() -> None:
    world = World(autoStartTimeoutSeconds=5)
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    world.run(ReimageSteps(world.api, world.post).run, victim)  # no replacement ever arrives
    assert world.stored("web-a") is None
    assert 5 <= world.clock.slept <= 6


def test_reboot_takes_the_instance_out_restarts_it_once_and_brings_it_back() -> None:
    world = World()
    pod = world.pod("web-a")
    world.annotate("web-a", **{c.REBOOT_ANNOTATION: "r-1"})
    world.run(RebootSteps(world.api, world.post).run, pod)
    rebooted = world.stored("web-a")
    assert rebooted is not None
    annotations = rebooted["metadata"]["annotations"]
    assert (annotations[c.REBOOT_DONE_ANNOTATION], annotations[c.REBOOT_RESTARTS_ANNOTATION]) == ("r-1", "0")
    assert rebooted["spec"]["containers"][0]["image"] == DIGEST_IMAGE.replace("@", ":vmrole-reboot@")
    assert rebooted["metadata"]["labels"][c.IN_ROTATION_LABEL] == "reboot"
    assert rebooted["metadata"]["uid"] == pod["metadata"]["uid"]

    patches = world.kube.count("patch", "pods", "web-a")
    world.run(RebootSteps(world.api, world.post).run, pod)  # the same token again: nothing
    assert world.kube.count("patch", "pods", "web-a") == patches
    assert not rotation_out_of_step(rebooted)  # the kubelet has not restarted it yet

    rebooted["status"]["containerStatuses"][0]["restartCount"] = 1
    world.kube.put(PODS, rebooted)
    assert rotation_out_of_step(rebooted)
    world.run(RotationSteps(world.api, world.post).run, rebooted)
    assert world.stored("web-a")["metadata"]["labels"][c.IN_ROTATION_LABEL] == "true"
    assert world.reasons("web-a") == ["Rebooted"]  # no busy Events for a reboot


def test_reboot_of_an_unpinned_instance_is_refused() -> None:
    world = World()
    pod = world.pod("web-a")
    world.kube.patch(PODS, "ns", "web-a", {"spec": {"containers": [{"name": "role", "image": "web:1"}]}})
    world.annotate("web-a", **{c.REBOOT_ANNOTATION: "r-1"})
    world.run(RebootSteps(world.api, world.post).run, pod)
    assert world.reasons("web-a") == ["RebootRefused"]


def test_busy_out_and_back_in_keeps_the_pod() -> None:
    world = World()
    world.pod("web-a")
    pod = world.annotate("web-a", **{c.BUSY_ANNOTATION: "true"})
    world.run(RotationSteps(world.api, world.post).run, pod)
    busy = world.stored("web-a")
    assert busy is not None
    assert busy["metadata"]["labels"][c.IN_ROTATION_LABEL] == "busy"
    assert busy["metadata"]["annotations"][c.ROTATION_CHANGED_ANNOTATION] == "2026-11-28T12:00:00Z"
    world.annotate("web-a", **{c.BUSY_ANNOTATION: "false"})
    world.run(RotationSteps(world.api, world.post).run, pod)
    assert world.stored("web-a")["metadata"]["labels"][c.IN_ROTATION_LABEL] == "true"
    assert world.reasons("web-a") == ["InstanceBusy", "InstanceNotBusy"]
    assert world.kube.count("delete", "pods") == 0


def test_observe_starts_one_task_per_pod_and_request() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    pod = world.annotate("web-a", **{c.BUSY_ANNOTATION: "true"})
    patches = world.kube.count("patch", "pods", "web-a")

    async def scenario() -> None:
        operations = InstanceOperations(world.kube, RoleReader(world.kube), world.post, world.clock)
        for _ in range(5):  # a burst of events for the same pod
            operations.observe(pod)
        await asyncio.sleep(0.2)
        await operations.close()

    asyncio.run(scenario())
    assert world.kube.count("patch", "pods", "web-a") == patches + 1
    assert world.reasons("web-a") == ["InstanceBusy"]


def _operations(world: World) -> InstanceOperations:
    return InstanceOperations(world.kube, RoleReader(world.kube), world.post, world.clock)


def test_a_control_plane_away_for_a_moment_is_waited_out_in_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.pod("web-a")
    pod = world.annotate("web-a", **{c.BUSY_ANNOTATION: "true"})
    world.kube.fail_next("get", "pods", 503, "ServiceUnavailable")
    world.kube.fail_next("get", "pods", 500, "InternalError")

    async def scenario() -> None:
        operations = _operations(world)
        operations.observe(pod)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if world.reasons("web-a"):
                break
        await operations.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert world.stored("web-a")["metadata"]["labels"][c.IN_ROTATION_LABEL] == "busy"
    assert world.reasons("web-a") == ["InstanceBusy"]
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is None for r in retries)  # no traceback for an expected failure
    assert "HTTP 503" in retries[0].getMessage()
    assert world.clock.slept == 1.0 + 2.0  # backoff, without waiting for another pod event


def test_an_unexpected_error_is_logged_with_its_traceback_and_left_to_the_next_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.pod("web-a")
    pod = world.annotate("web-a", **{c.BUSY_ANNOTATION: "true"})
    world.kube.fail_next("get", "pods", 403, "Forbidden")

    async def scenario() -> None:
        operations = _operations(world)
        operations.observe(pod)
        await asyncio.sleep(0.2)
        await operations.close()

    asyncio.run(scenario())
    [failed] = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failed.exc_info is not None
    assert world.stored("web-a")["metadata"]["labels"][c.IN_ROTATION_LABEL] == "true"
    assert world.clock.sleeps == 0


def test_a_request_that_arrives_while_its_task_runs_is_not_dropped() -> None:
    """busy on, then off while the `on` task is writing its label: the off event finds the task
    still running; the task goes once more when it ends and follows the latest request."""
    world = World()
    world.pod("web-a")
    pod = world.annotate("web-a", **{c.BUSY_ANNOTATION: "true"})
    original_patch = world.kube.patch
    flipped: list[dict[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        operations = _operations(world)

        def patch(*args: Any, **kwargs: Any) -> dict[str, Any]:
            done = original_patch(*args, **kwargs)
            labels = args[3].get("metadata", {}).get("labels") or {}
            if labels.get(c.IN_ROTATION_LABEL) == "busy" and not flipped:
                # The user clears busy right after; its event reaches the operator before the task
                # that wrote `busy` has ended.
                flipped.append(world.annotate("web-a", **{c.BUSY_ANNOTATION: "false"}))
                loop.call_soon_threadsafe(operations.observe, flipped[0])
            return done

        world.kube.patch = patch  # type: ignore[method-assign]
        operations.observe(pod)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(world.reasons("web-a")) == 2:
                break
        await operations.close()

    asyncio.run(scenario())
    assert flipped
    assert world.stored("web-a")["metadata"]["labels"][c.IN_ROTATION_LABEL] == "true"
    assert world.reasons("web-a") == ["InstanceBusy", "InstanceNotBusy"]


def test_a_reimage_supersedes_a_reboot_not_yet_done() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    pod = world.annotate("web-a", **{c.REBOOT_ANNOTATION: "r-1", c.REIMAGE_ANNOTATION: "t-1"})
    patches = world.kube.count("patch", "pods", "web-a")
    world.run(RebootSteps(world.api, world.post).run, pod)
    assert world.kube.count("patch", "pods", "web-a") == patches  # the reboot does nothing at all
    replacement_arrives(world)
    world.run(ReimageSteps(world.api, world.post).run, pod)
    assert world.stored("web-a") is None
    assert world.kube.count("delete", "pods", "web-a") == 1
    assert world.reasons("web-a") == ["ReimageStarted", "RebootSuperseded", "Reimaged"]


def test_a_reimage_asked_for_during_a_reboots_drain_wins() -> None:
    world = World(
        endpoints={"input": [{"name": "http", "port": 80, "targetPort": 8080}]},
        autoStart=[{"name": "http", "tcpSocket": {"port": 8080}}],
    )
    world.pod("web-a", ip="10.244.0.10")
    world.serving("10.244.0.10")

    def during_drain(sleeps: int) -> None:
        if sleeps == 1:
            world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
            world.serving()  # none ready

    world.clock.hooks.append(during_drain)
    pod = world.annotate("web-a", **{c.REBOOT_ANNOTATION: "r-1"})
    world.run(RebootSteps(world.api, world.post).run, pod)
    after = world.stored("web-a")
    assert after is not None
    assert c.REBOOT_DONE_ANNOTATION not in after["metadata"]["annotations"]
    assert after["spec"]["containers"][0]["image"] == pod["spec"]["containers"][0]["image"]
    assert "Rebooted" not in world.reasons("web-a")


def test_a_reimage_asked_for_just_before_the_restart_patch_makes_it_fail_and_wins() -> None:
    world = World()
    pod = world.pod("web-a")
    world.annotate("web-a", **{c.REBOOT_ANNOTATION: "r-1"})
    original_patch = world.kube.patch

    def patch(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if "spec" in args[3] and c.REIMAGE_ANNOTATION not in world.stored("web-a")["metadata"]["annotations"]:
            world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})  # after the reboot's last read
        return original_patch(*args, **kwargs)

    world.kube.patch = patch  # type: ignore[method-assign]
    world.run(RebootSteps(world.api, world.post).run, pod)
    after = world.stored("web-a")
    assert after is not None
    assert c.REBOOT_DONE_ANNOTATION not in after["metadata"]["annotations"]
    assert after["spec"]["containers"][0]["image"] == pod["spec"]["containers"][0]["image"]
    assert "Rebooted" not in world.reasons("web-a")


def _terminating(world: World, name: str) -> None:
    """A user's `kubectl delete pod`: the API server marks it; the kubelet removes it later."""
    pod = world.stored(name)
    assert pod is not None
    pod["metadata"]["deletionTimestamp"] = "2026-11-28T12:00:03Z"
    world.kube.put(PODS, pod)


def test_a_victim_deleted_by_hand_during_the_drain_is_not_deleted_again() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    replacement_arrives(world)
    original_label = world.api.label_rotation

    async def label_then_user_deletes(pod: Any, value: str, still: Any = None) -> bool:
        done = await original_label(pod, value, still)
        _terminating(world, "web-a")
        return done

    world.api.label_rotation = label_then_user_deletes  # type: ignore[method-assign]
    world.run(ReimageSteps(world.api, world.post).run, victim)
    assert world.kube.count("delete", "pods", "web-a") == 0
    assert "Reimaged" not in world.reasons("web-a")


def test_a_deletion_by_hand_between_the_last_read_and_the_delete_is_not_repeated() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})
    replacement_arrives(world)
    original_delete = world.kube.delete

    def user_first(*args: Any) -> dict[str, Any]:
        if not world.stored("web-a")["metadata"].get("deletionTimestamp"):
            _terminating(world, "web-a")
        return original_delete(*args)

    world.kube.delete = user_first  # type: ignore[method-assign]
    world.run(ReimageSteps(world.api, world.post).run, victim)
    assert world.kube.count("delete", "pods", "web-a") == 0  # answered 409: the pod had changed
    assert world.stored("web-a")["metadata"]["deletionTimestamp"]
    assert "Reimaged" not in world.reasons("web-a")


def test_a_reimage_withdrawn_during_the_surge_wait_puts_the_victim_back_and_deletes_nothing() -> None:
    world = World()
    world.pod("web-a")
    world.pod("web-b")
    victim = world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "t-1"})

    def user_takes_it_back(sleeps: int) -> None:
        if sleeps == 3:  # no replacement came: the victim still serves, out of the pool
            world.kube.patch(
                PODS,
                "ns",
                "web-a",
                {"metadata": {"annotations": {c.REIMAGE_ANNOTATION: None}}},
                content_type=MERGE_PATCH,
            )

    world.clock.hooks.append(user_takes_it_back)
    world.run(ReimageSteps(world.api, world.post).run, victim)
    left = world.stored("web-a")
    assert left is not None
    assert reimage_withdrawn(left)  # out of the pool, serving, no request: one instance too many

    world.run(WithdrawnReimageSteps(world.api, world.post).run, left)
    back = world.stored("web-a")
    assert back is not None
    assert back["metadata"]["labels"][c.IN_POOL_LABEL] == "true"
    assert c.REIMAGE_STARTED_ANNOTATION not in back["metadata"]["annotations"]
    # No controller: the ReplicaSet adopts it again.
    assert not any(r.get("controller") for r in back["metadata"]["ownerReferences"])
    assert not reimage_withdrawn(back)
    assert world.kube.count("delete", "pods", "web-a") == 0
    assert world.reasons("web-a") == ["ReimageStarted", "ReimageWithdrawn"]


def test_a_victim_already_draining_is_not_withdrawn() -> None:
    world = World()
    pod = world.pod(
        "web-a",
        labels={c.IN_ROTATION_LABEL: c.OUT_FOR_REIMAGE},
        annotations={c.REIMAGE_STARTED_ANNOTATION: "2026-11-28T12:00:00Z"},
    )
    world.kube.patch(
        PODS, "ns", "web-a", {"metadata": {"labels": {c.IN_POOL_LABEL: None}}}, content_type=MERGE_PATCH
    )
    stored = world.stored("web-a")
    assert stored is not None
    assert not reimage_withdrawn(stored)  # out of rotation: the rotation step first puts it back in
    world.run(WithdrawnReimageSteps(world.api, world.post).run, pod)
    assert world.reasons("web-a") == []
