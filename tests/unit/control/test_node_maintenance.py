"""Node maintenance against the in-memory API: a cordon asks for surge-first reimages of the node's
instances, an uncordon withdraws the ones still serving, and neither crosses a reimage under way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.support.instance_world import World, replacement_arrives
from vmrole_operator import constants as c
from vmrole_operator.control.node_maintenance import NodeMaintenance, needs_replacement, withdrawable
from vmrole_operator.control.reimage import MAX_SURGE_WAIT_S, ReimageSteps
from vmrole_operator.kube.api import MERGE_PATCH, PODS
from vmrole_operator.state.observed import trim_pod_for_node
from vmrole_operator.state.requests import is_node_drain_token


def node(name: str, cordoned: bool) -> dict[str, Any]:
    spec = {"unschedulable": True} if cordoned else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


class Maintenance:
    """NodeMaintenance over `world`, its by-node view read from the API the way kopf's index keeps it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.nodes = NodeMaintenance(world.api, world.post, self.pods_on_node, world.clock)
        self.pods_read = 0

    def pods_on_node(self, name: str) -> list[dict[str, Any]]:
        pods = self.world.kube.list(PODS, "ns", f"{c.ROLE_LABEL}=web")
        return [trim_pod_for_node(p) for p in pods if p["spec"].get("nodeName") == name]

    def run(self, *steps: Callable[[NodeMaintenance], None]) -> None:
        async def scenario() -> None:
            for step in steps:
                step(self.nodes)
                await self.nodes.join()

        asyncio.run(scenario())


def on_node(world: World, name: str, node_name: str, **kwargs: Any) -> dict[str, Any]:
    world.pod(name, **kwargs)
    return world.kube.patch(PODS, "ns", name, {"spec": {"nodeName": node_name}}, content_type=MERGE_PATCH)


def cordoned_with(*placement: tuple[str, str]) -> tuple[World, Maintenance]:
    """A role with one instance per (pod, node), and node w1 just cordoned."""
    world = World(instances=len(placement))
    for pod, node_name in placement:
        on_node(world, pod, node_name)
    m = Maintenance(world)
    m.run(lambda n: n.node_changed(node("w1", True)))
    return world, m


def token_of(world: World, name: str) -> str | None:
    pod = world.stored(name)
    assert pod is not None
    return (pod["metadata"].get("annotations") or {}).get(c.REIMAGE_ANNOTATION)


def test_a_cordon_asks_for_a_reimage_of_every_instance_of_that_node_only() -> None:
    world = World(instances=3)
    on_node(world, "web-a", "w1")
    on_node(world, "web-b", "w1")
    on_node(world, "web-c", "w2")
    m = Maintenance(world)
    m.run(lambda n: n.node_changed(node("w1", False)), lambda n: n.node_changed(node("w2", False)))
    assert [token_of(world, p) for p in ("web-a", "web-b", "web-c")] == [None, None, None]

    m.run(lambda n: n.node_changed(node("w1", True)))
    assert is_node_drain_token(token_of(world, "web-a"))
    assert is_node_drain_token(token_of(world, "web-b"))
    assert token_of(world, "web-c") is None
    assert world.reasons("web-a") == ["NodeCordoned"]
    assert world.reasons("web") == ["NodeCordoned", "NodeCordoned"]


def test_a_node_seen_again_in_the_same_state_costs_nothing() -> None:
    world, m = cordoned_with(("web-a", "w1"))
    writes = len(world.kube.writes)
    m.run(lambda n: n.node_changed(node("w1", True)), lambda n: n.node_changed(node("w1", True)))
    assert len(world.kube.writes) == writes


def test_instances_already_being_replaced_or_going_are_left_alone() -> None:
    world = World(instances=3)
    on_node(world, "web-a", "w1", annotations={c.REIMAGE_ANNOTATION: "mine"})
    on_node(world, "web-b", "w1")
    world.kube.patch(
        PODS, "ns", "web-b", {"metadata": {"labels": {c.IN_POOL_LABEL: None}}}, content_type=MERGE_PATCH
    )
    on_node(world, "web-c", "w1")
    world.kube.patch(
        PODS,
        "ns",
        "web-c",
        {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}},
        content_type=MERGE_PATCH,
    )
    m = Maintenance(world)
    m.run(lambda n: n.node_changed(node("w1", True)))
    assert token_of(world, "web-a") == "mine"
    assert token_of(world, "web-b") is None
    assert token_of(world, "web-c") is None
    assert world.events == []


def test_an_uncordon_withdraws_the_requests_of_instances_still_serving() -> None:
    world, m = cordoned_with(("web-a", "w1"), ("web-b", "w1"))
    # web-b's reimage went further: out of the pool, then out of rotation for its drain.
    world.kube.patch(
        PODS,
        "ns",
        "web-b",
        {"metadata": {"labels": {c.IN_POOL_LABEL: None, c.IN_ROTATION_LABEL: c.OUT_FOR_REIMAGE}}},
        content_type=MERGE_PATCH,
    )
    world.kube.patch(
        PODS, "ns", "web-a", {"metadata": {"labels": {c.IN_POOL_LABEL: None}}}, content_type=MERGE_PATCH
    )
    world.events.clear()

    m.run(lambda n: n.node_changed(node("w1", False)))
    a = world.stored("web-a")
    assert a is not None
    assert c.REIMAGE_ANNOTATION not in a["metadata"]["annotations"]
    assert c.REIMAGE_STARTED_ANNOTATION not in a["metadata"]["annotations"]
    assert a["metadata"]["labels"][c.IN_POOL_LABEL] == "true"  # the ReplicaSet counts it again
    assert world.reasons("web-a") == ["NodeUncordoned"]
    # Already draining: it goes on to be replaced, once.
    assert is_node_drain_token(token_of(world, "web-b"))
    assert world.reasons("web-b") == []


def test_a_restarted_operator_finishes_both_directions_from_what_the_pods_say() -> None:
    world = World(instances=2)
    on_node(world, "web-a", "w1", annotations={c.REIMAGE_ANNOTATION: "node-drain.20260101T000000Z"})
    on_node(world, "web-b", "w2")
    m = Maintenance(world)  # knows no node yet: the first sight of each decides
    m.run(lambda n: n.node_changed(node("w1", False)), lambda n: n.node_changed(node("w2", True)))
    assert token_of(world, "web-a") is None  # w1 was uncordoned while no operator ran
    assert is_node_drain_token(token_of(world, "web-b"))


def test_a_pod_seen_on_a_known_cordoned_node_is_asked_for_and_an_unknown_node_waits() -> None:
    world = World(instances=2)
    m = Maintenance(world)
    m.run(lambda n: n.node_changed(node("w1", True)))
    late = on_node(world, "web-a", "w1")
    elsewhere = on_node(world, "web-b", "w9")
    m.run(lambda n: n.pod_changed(late), lambda n: n.pod_changed(elsewhere))
    assert is_node_drain_token(token_of(world, "web-a"))
    assert token_of(world, "web-b") is None


def test_a_concurrent_change_is_read_again_and_decided_again() -> None:
    world = World(instances=1)
    on_node(world, "web-a", "w1")
    original_get = world.kube.get
    state = {"gets": 0}

    def get_then_someone_writes(*args: Any) -> dict[str, Any]:
        found = original_get(*args)
        state["gets"] += args[0] == PODS
        if state["gets"] == 1:  # the kubelet writes between our read and our patch
            world.kube.patch(
                PODS, "ns", "web-a", {"metadata": {"labels": {"x": "y"}}}, content_type=MERGE_PATCH
            )
        return found

    world.kube.get = get_then_someone_writes  # type: ignore[method-assign]
    Maintenance(world).run(lambda n: n.node_changed(node("w1", True)))
    assert is_node_drain_token(token_of(world, "web-a"))
    assert state["gets"] == 2  # refused once (409 on resourceVersion), read again, written once


def test_a_users_request_written_meanwhile_is_never_overwritten() -> None:
    world = World(instances=1)
    on_node(world, "web-a", "w1")
    original_get = world.kube.get

    def get_then_user_asks(*args: Any) -> dict[str, Any]:
        found = original_get(*args)
        if token_of(world, "web-a") is None:
            world.annotate("web-a", **{c.REIMAGE_ANNOTATION: "users-own"})
        return found

    world.kube.get = get_then_user_asks  # type: ignore[method-assign]
    Maintenance(world).run(lambda n: n.node_changed(node("w1", True)))
    assert token_of(world, "web-a") == "users-own"
    assert world.events == []


def test_a_node_drains_reimage_waits_for_room_past_every_deadline_and_an_uncordon_ends_it() -> None:
    world, m = cordoned_with(("web-a", "w1"), ("web-b", "w2"))
    victim = world.stored("web-a")
    assert victim is not None
    uncordoned_at = int(MAX_SURGE_WAIT_S / 0.25) + 40  # sleeps: well past a user reimage's deadline

    def uncordon(sleeps: int) -> None:
        if sleeps == uncordoned_at:
            m.nodes.node_changed(node("w1", False))

    world.clock.hooks.append(uncordon)

    async def scenario() -> None:
        await ReimageSteps(world.api, world.post).run("ns", "web-a", victim["metadata"]["uid"])
        await m.nodes.join()

    asyncio.run(scenario())
    a = world.stored("web-a")
    assert a is not None  # never deleted: no replacement ever served
    assert world.clock.sleeps >= uncordoned_at
    assert a["metadata"]["labels"][c.IN_POOL_LABEL] == "true"
    assert a["metadata"]["labels"][c.IN_ROTATION_LABEL] == c.IN_ROTATION
    assert world.kube.count("delete", "pods", "web-a") == 0


def test_a_node_drains_reimage_surges_drains_and_deletes_once_when_there_is_room() -> None:
    world, _m = cordoned_with(("web-a", "w1"), ("web-b", "w2"))
    victim = world.stored("web-a")
    assert victim is not None
    replacement_arrives(world)
    world.run(ReimageSteps(world.api, world.post).run, victim)
    assert world.stored("web-a") is None
    assert world.kube.count("delete", "pods", "web-a") == 1


def test_a_withdrawal_between_the_reimages_read_and_its_first_step_stops_it() -> None:
    world = World(instances=1)
    on_node(world, "web-a", "w1", annotations={c.REIMAGE_ANNOTATION: "node-drain.20260101T000000Z"})
    victim = world.stored("web-a")
    assert victim is not None
    original_get = world.kube.get
    state = {"gets": 0}

    def get_then_withdrawn(*args: Any) -> dict[str, Any]:
        found = original_get(*args)
        state["gets"] += 1
        if state["gets"] == 1:
            world.kube.patch(
                PODS,
                "ns",
                "web-a",
                {"metadata": {"annotations": {c.REIMAGE_ANNOTATION: None}}},
                content_type=MERGE_PATCH,
            )
        return found

    world.kube.get = get_then_withdrawn  # type: ignore[method-assign]
    world.run(ReimageSteps(world.api, world.post).run, victim)
    a = world.stored("web-a")
    assert a is not None
    assert a["metadata"]["labels"][c.IN_POOL_LABEL] == "true"  # never left the pool
    assert c.REIMAGE_STARTED_ANNOTATION not in a["metadata"]["annotations"]
    assert world.reasons("web-a") == []


def test_a_deleted_node_is_forgotten() -> None:
    world = World(instances=1)
    m = Maintenance(world)
    m.run(
        lambda n: n.node_changed(node("w1", True)), lambda n: n.node_changed(node("w1", True), deleted=True)
    )
    assert m.nodes.cordoned == {}


def test_the_predicates_read_the_trimmed_entry_like_the_pod() -> None:
    world = World(instances=1)
    pod = on_node(world, "web-a", "w1")
    entry = trim_pod_for_node(pod)
    assert needs_replacement(entry)
    assert needs_replacement(pod)
    pod["metadata"]["annotations"][c.REIMAGE_ANNOTATION] = "node-drain.1"
    entry = trim_pod_for_node(pod)
    assert withdrawable(entry)
    assert withdrawable(pod)
    assert not needs_replacement(entry)
    assert entry["spec"] == {"nodeName": "w1"}
    assert set(entry["metadata"]["labels"]) <= {c.IN_POOL_LABEL, c.IN_ROTATION_LABEL}
