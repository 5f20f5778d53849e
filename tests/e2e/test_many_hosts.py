"""Fault domains, node maintenance surge first, and service healing after a host loss.

What needs two workers (spread, a drain with room, a paused node) runs on the kind cluster
(`CLUSTER=kind make test`) and skips on one with fewer. What one node can show runs everywhere: the
budget refusing an eviction, strict spread reporting why an instance waits, a drain with no room
falling back to maxUnavailable, and an uncordon in the middle of a drain.

Cordoning and draining change what every other test's pods can do, so those tests are serial.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from .conftest import kubectl, schedulable_nodes
from .kube import Kube
from .roles import condition, create_role, get_role, instances, role_manifest, wait_available
from .traffic import EndpointSampler, HttpLoad

pytestmark = pytest.mark.usefixtures("operator")
HOSTNAME = "kubernetes.io/hostname"
DRAIN_TOKEN = "node-drain."


@pytest.fixture
def uncordon_after(kube: Kube) -> Iterator[list[str]]:
    """Nodes a test cordons; uncordoned whatever happens, so no later test finds them closed."""
    cordoned: list[str] = []
    yield cordoned
    for node in cordoned:
        kubectl("uncordon", node, check=False)


def by_node(kube: Kube, namespace: str, role: str) -> Counter[str]:
    return Counter(p["spec"].get("nodeName") or "" for p in instances(kube, namespace, role))


def ready_uids(kube: Kube, namespace: str, role: str) -> set[str]:
    return {
        p["metadata"]["uid"]
        for p in instances(kube, namespace, role)
        if kube.pod_ready(namespace, p["metadata"]["name"])
    }


def events_of(kube: Kube, namespace: str, reason: str) -> list[Any]:
    return [e for e in kube.core.list_namespaced_event(namespace).items if e.reason == reason]


def names_held_once(kube: Kube, namespace: str, role: str) -> Counter[str]:
    """The instance names the role's pods hold, terminating ones included: never one twice."""
    held = Counter(
        (p["metadata"].get("labels") or {}).get("vmrole.dev/instance")
        for p in kube.pods(namespace, f"vmrole.dev/role={role}")
    )
    held.pop(None, None)
    assert all(count == 1 for count in held.values()), held
    return held


def drain(node: str, role: str, timeout_s: int) -> subprocess.CompletedProcess[str]:
    """`kubectl drain` of this role's pods only: the cluster's own pods stay where they are."""
    return subprocess.run(
        [
            "kubectl", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
            f"--pod-selector=vmrole.dev/role={role}", f"--timeout={timeout_s}s",
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )  # fmt: skip


def test_a_budget_per_role_refuses_an_eviction_that_no_replacement_covers(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(instances=2))
    wait_available(kube, namespace, "web", ready=2)
    budget = kube.api.sanitize_for_serialization(
        kube.policy.read_namespaced_pod_disruption_budget("web", namespace)
    )
    assert budget["spec"]["minAvailable"] == 2
    kube.wait_for(
        lambda: (
            kube.policy.read_namespaced_pod_disruption_budget("web", namespace).status.current_healthy == 2
        ),
        30,
        "the budget counting both instances",
    )
    victim = instances(kube, namespace, "web")[0]["metadata"]["name"]
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": victim, "namespace": namespace},
    }
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_pod_eviction(victim, namespace, eviction)
    assert refused.value.status == 429, refused.value.body
    # Instances leave a lost node after spec.healing.nodeLossSeconds, not Kubernetes' 300 s.
    pod = kube.pod(namespace, victim)
    seconds = {t["key"]: t.get("tolerationSeconds") for t in pod["spec"]["tolerations"]}
    assert seconds["node.kubernetes.io/unreachable"] == 30
    assert seconds["node.kubernetes.io/not-ready"] == 30


def test_strict_spread_with_more_instances_than_nodes_says_why_one_waits(kube: Kube, namespace: str) -> None:
    nodes = schedulable_nodes(kube)
    create_role(kube, namespace, role_manifest(instances=len(nodes) + 1, spread="Required"))

    def reported() -> dict[str, Any] | None:
        role = get_role(kube, namespace, "web")
        cond = condition(role, "Schedulable")
        ready = (role.get("status") or {}).get("readyReplicas")
        return role if cond and cond["status"] == "False" and ready == len(nodes) else None

    role = kube.wait_for(reported, 120, "one instance per node and the last one reported unschedulable")
    cond = condition(role, "Schedulable")
    assert cond is not None
    assert cond["reason"] == "NoRoomToSurge"
    assert "spec.spread Required" in cond["message"]
    assert "topology spread" in cond["message"], cond["message"]  # the scheduler's own words
    waiting = [i for i in role["status"]["instances"] if i["state"] == "CreatingVM"]
    assert len(waiting) == 1
    assert waiting[0]["message"].startswith("not scheduled: Unschedulable"), waiting[0]
    placed = by_node(kube, namespace, "web")
    assert placed[""] == 1
    assert all(count == 1 for node, count in placed.items() if node), placed


def test_instances_spread_over_nodes_and_the_status_says_where(
    kube: Kube, namespace: str, workers: list[str]
) -> None:
    create_role(kube, namespace, role_manifest(instances=len(workers)))
    role = wait_available(kube, namespace, "web", ready=len(workers))
    placed = by_node(kube, namespace, "web")
    assert set(placed) == set(workers), placed  # one on each: the preference holds when it can
    shown = {i["pod"]: i.get("node") for i in role["status"]["instances"]}
    assert shown == {p["metadata"]["name"]: p["spec"]["nodeName"] for p in instances(kube, namespace, "web")}


@pytest.mark.serial
def test_a_drain_replaces_first_and_never_drops_a_request(
    kube: Kube, namespace: str, workers: list[str], uncordon_after: list[str]
) -> None:
    role = "drained"
    create_role(kube, namespace, role_manifest(name=role, instances=len(workers) + 1))
    wait_available(kube, namespace, role, ready=len(workers) + 1)
    cluster_ip = kube.core.read_namespaced_service(role, namespace).spec.cluster_ip
    node = by_node(kube, namespace, role).most_common(1)[0][0]
    on_node = {
        p["metadata"]["uid"] for p in instances(kube, namespace, role) if p["spec"]["nodeName"] == node
    }

    with HttpLoad(f"http://{cluster_ip}/version") as load, EndpointSampler(kube, namespace, role) as sampler:
        time.sleep(1)
        uncordon_after.append(node)
        result = drain(node, role, 240)
        time.sleep(1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert load.total > 50
    assert load.failures == [], load.failures[:5]
    assert min(sampler.ready_counts()) >= len(workers) + 1, sampler.ready_counts()
    # The budget held the drain until a replacement served (kubectl retries a refused eviction).
    assert "disruption budget" in result.stdout + result.stderr, result.stdout + result.stderr
    assert node not in by_node(kube, namespace, role)
    assert not on_node & {p["metadata"]["uid"] for p in instances(kube, namespace, role)}
    wait_available(kube, namespace, role, ready=len(workers) + 1)
    assert sum(names_held_once(kube, namespace, role).values()) == len(workers) + 1
    assert len(events_of(kube, namespace, "NodeCordoned")) >= len(on_node)


def _no_room_role(kube: Kube, namespace: str, name: str, node: str) -> None:
    """Two instances that may only run on `node`: cordoned, it leaves them no room to surge."""
    manifest = role_manifest(
        name=name, instances=2, nodeSelector={HOSTNAME: node}, upgrade={"maxUnavailable": 1, "maxSurge": 0}
    )
    create_role(kube, namespace, manifest)
    wait_available(kube, namespace, name, ready=2)


def _no_room_reported(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    def reported() -> dict[str, Any] | None:
        cond = condition(get_role(kube, namespace, name), "Schedulable")
        return cond if cond and cond["reason"] == "NoRoomToSurge" else None

    cond: dict[str, Any] = kube.wait_for(reported, 60, "the role to report no room to surge")
    kube.wait_for(
        lambda: kube.policy.read_namespaced_pod_disruption_budget(name, namespace).spec.min_available == 1,
        30,
        "the budget falling back to maxUnavailable",
    )
    return cond


@pytest.mark.serial
def test_with_no_room_to_surge_a_drain_takes_max_unavailable_at_a_time(
    kube: Kube, namespace: str, uncordon_after: list[str]
) -> None:
    node, role = schedulable_nodes(kube)[0], "noroom"
    _no_room_role(kube, namespace, role, node)
    before = {p["metadata"]["uid"] for p in instances(kube, namespace, role)}
    with EndpointSampler(kube, namespace, role) as sampler:
        uncordon_after.append(node)
        kubectl("cordon", node)
        cond = _no_room_reported(kube, namespace, role)
        assert "maxUnavailable (1) at a time" in cond["message"]
        result = drain(node, role, 20)  # one eviction goes; the second waits for a node that never comes
    assert result.returncode != 0
    assert min(sampler.ready_counts()) >= 1, sampler.ready_counts()
    left = {p["metadata"]["uid"] for p in instances(kube, namespace, role)} & before
    assert len(left) == 1, f"not exactly maxUnavailable (1) evicted: {result.stdout} {result.stderr}"

    kubectl("uncordon", node)
    wait_available(kube, namespace, role, ready=2)
    kube.wait_for(
        lambda: (condition(get_role(kube, namespace, role), "Schedulable") or {}).get("status") == "True",
        60,
        "room again",
    )


@pytest.mark.serial
def test_an_uncordon_in_the_middle_of_a_drain_leaves_nothing_stuck(
    kube: Kube, namespace: str, uncordon_after: list[str]
) -> None:
    node, role = schedulable_nodes(kube)[0], "midway"
    _no_room_role(kube, namespace, role, node)
    before = ready_uids(kube, namespace, role)
    uncordon_after.append(node)
    kubectl("cordon", node)
    _no_room_reported(kube, namespace, role)
    pods = kube.pods(namespace, f"vmrole.dev/role={role}")
    asked = [
        p
        for p in pods
        if (p["metadata"].get("annotations") or {}).get("vmrole.dev/reimage", "").startswith(DRAIN_TOKEN)
    ]
    assert {p["metadata"]["uid"] for p in asked} == before  # both instances asked to be replaced

    kubectl("uncordon", node)

    def settled() -> bool:
        pods = kube.pods(namespace, f"vmrole.dev/role={role}")
        annotations = [p["metadata"].get("annotations") or {} for p in pods]
        return (
            len(pods) == 2
            and ready_uids(kube, namespace, role) == before
            and not any("vmrole.dev/reimage" in a for a in annotations)
        )

    kube.wait_for(settled, 90, "the same two instances, no request and no extra pod left")
    assert len(events_of(kube, namespace, "NodeUncordoned")) == 2
    role_now = wait_available(kube, namespace, role, ready=2)
    assert (condition(role_now, "Schedulable") or {}).get("status") == "True"
    names_held_once(kube, namespace, role)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.serial
def test_a_lost_host_s_instances_come_back_elsewhere_with_fresh_disks(
    kube: Kube, namespace: str, workers: list[str]
) -> None:
    loss_s = 10
    create_role(kube, namespace, role_manifest(instances=2, healing={"nodeLossSeconds": loss_s}))
    wait_available(kube, namespace, "web", ready=2)
    placed = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in instances(kube, namespace, "web")}
    lost = sorted(placed.values())[0]
    victims = [name for name, node in placed.items() if node == lost]
    for name in victims:
        kubectl("exec", "-n", namespace, name, "--", "sh", "-c", "echo old > /scratch/marker")

    paused_at = time.monotonic()
    _docker("pause", lost)
    try:

        def back_elsewhere() -> list[dict[str, Any]] | None:
            live = [
                p for p in instances(kube, namespace, "web") if p["spec"].get("nodeName") not in (None, lost)
            ]
            ready = [p for p in live if kube.pod_ready(namespace, p["metadata"]["name"])]
            return ready if len(ready) == 2 else None

        ready = kube.wait_for(back_elsewhere, loss_s + 50 + 60, "both instances ready on the other nodes")
        healed_s = time.monotonic() - paused_at
        kube.wait_for(
            lambda: sorted(names_held_once(kube, namespace, "web")) == ["web_IN_0", "web_IN_1"],
            30,
            "the names passed on to the replacements, each held once",
        )
        for pod in ready:
            if pod["metadata"]["name"] not in placed:
                listing = kubectl("exec", "-n", namespace, pod["metadata"]["name"], "--", "ls", "/scratch")
                assert "marker" not in listing.split()  # a fresh disk: the lost host's state is gone
        print(json.dumps({"node": lost, "nodeLossSeconds": loss_s, "healed_seconds": round(healed_s, 1)}))
    finally:
        _docker("unpause", lost)

    kube.wait_for(lambda: lost in schedulable_nodes(kube), 120, f"{lost} Ready again")
    # The old pods were deleted while their kubelet was away; back, it finishes them: nothing doubled.
    kube.wait_for(
        lambda: len(kube.pods(namespace, "vmrole.dev/role=web")) == 2, 120, "only the two instances left"
    )
    role = wait_available(kube, namespace, "web", ready=2)
    assert len(role["status"]["instances"]) == 2
    assert sorted(names_held_once(kube, namespace, "web")) == ["web_IN_0", "web_IN_1"]
