"""Role reconciliation against the in-memory API: pinning, children, sweeping, rounds, heals, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cluster_state import instance_pod, observe, role_object, stored_role
from tests.support.fake_clock import FakeClock
from tests.support.fake_kube import Crash, FakeKube
from vmrole_operator import constants as c
from vmrole_operator.control.role_reader import RoleReader
from vmrole_operator.control.role_reconciler import RoleReconciler
from vmrole_operator.control.role_workers import Work
from vmrole_operator.kube.api import (
    CONFIGMAPS,
    DEPLOYMENTS,
    DISRUPTION_BUDGETS,
    MERGE_PATCH,
    NETWORK_POLICIES,
    PODS,
    SERVICES,
    VMROLES,
)
from vmrole_operator.state.node_images import NodeImages

DIGEST_IMAGE = "localhost/vmrole-test/web@sha256:" + "b" * 64
ENDPOINTS = {
    "input": [{"name": "http", "port": 80, "targetPort": 8080}],
    "internal": [{"name": "peer", "port": 7000}],
}
CHECKS = [{"name": "http", "tcpSocket": {"port": 8080}}]

Event = tuple[str, str, str, str]


class Operator:
    """One operator process: a reconciler over the shared API; a new one is a restart."""

    def __init__(self, kube: FakeKube, node_images: NodeImages | None = None) -> None:
        self.kube = kube
        self.events: list[Event] = []
        self.reconciler = RoleReconciler(
            kube, RoleReader(kube), "pause:test", self._post, FakeClock(kube.now), node_images
        )

    def _post(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))

    def run(self, work: Work = Work.RECONCILE, name: str = "web") -> float | None:
        return self.reconciler.run("ns", name, work, observe(self.kube, "ns", name))

    def reasons(self) -> list[str]:
        return [reason for _, _, reason, _ in self.events]


def put_role(kube: FakeKube, **spec: Any) -> dict[str, Any]:
    return kube.put(VMROLES, role_object(**spec))


def annotate_role(kube: FakeKube, **annotations: str) -> None:
    kube.patch(VMROLES, "ns", "web", {"metadata": {"annotations": annotations}}, content_type=MERGE_PATCH)


def test_a_tag_is_pinned_through_a_resolver_pod_before_any_instance_exists() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:1", endpoints=ENDPOINTS, autoStart=CHECKS)
    op = Operator(kube)
    op.run()
    [resolver] = [o for (_, plural, _, _), o in kube.objects.items() if plural == "pods"]
    assert resolver["metadata"]["labels"][c.RESOLVER_FOR_LABEL] == "web"
    assert kube.stored(DEPLOYMENTS, "ns", "web") is None  # nothing runs an unpinned image
    assert kube.stored(SERVICES, "ns", "web") is not None  # the Services need no image
    assert "ResolvingImage" in op.reasons()
    progressing = next(x for x in stored_role(kube)["status"]["conditions"] if x["type"] == "Progressing")
    assert progressing["reason"] == "PinningImage"

    op.run()  # the resolver pod has not reported yet: nothing new is created
    assert kube.count("create", "pods") == 1
    assert op.reasons().count("ResolvingImage") == 1

    # The kubelet reports what it resolved the tag to.
    resolver["status"] = {
        "containerStatuses": [
            {"name": c.RESOLVER_CONTAINER, "imageID": DIGEST_IMAGE, "state": {"waiting": {}}}
        ]
    }
    kube.put(PODS, resolver)
    op.run()
    status = stored_role(kube)["status"]
    assert (status["image"], status["specImage"]) == (DIGEST_IMAGE, "localhost/vmrole-test/web:1")
    assert kube.stored(PODS, "ns", resolver["metadata"]["name"]) is None
    deployment = kube.stored(DEPLOYMENTS, "ns", "web")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST_IMAGE
    assert "ImagePinned" in op.reasons()


def node_holding(name: str, labels: dict[str, str], *names: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "status": {"images": [{"names": list(names)}]}}


def test_a_tag_every_node_holds_under_one_digest_is_pinned_with_no_resolver_pod() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:1", endpoints=ENDPOINTS, autoStart=CHECKS)
    nodes = NodeImages()
    nodes.node_changed(node_holding("n1", {}, DIGEST_IMAGE, "localhost/vmrole-test/web:1"))
    op = Operator(kube, nodes)
    op.run()
    assert kube.count("create", "pods") == 0
    status = stored_role(kube)["status"]
    assert (status["image"], status["specImage"]) == (DIGEST_IMAGE, "localhost/vmrole-test/web:1")
    deployment = kube.stored(DEPLOYMENTS, "ns", "web")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST_IMAGE
    assert op.reasons().count("ImagePinned") == 1
    assert "ResolvingImage" not in op.reasons()
    op.run()  # pinned: the nodes are not asked again, and nothing is written twice
    assert op.reasons().count("ImagePinned") == 1


def test_a_resolver_pod_left_from_before_goes_once_the_nodes_settle_the_tag() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:1", endpoints=ENDPOINTS, autoStart=CHECKS)
    nodes = NodeImages()
    op = Operator(kube, nodes)
    op.run()  # no node holds the tag yet: a resolver pod
    [resolver] = [o for (_, plural, _, _), o in kube.objects.items() if plural == "pods"]
    nodes.node_changed(node_holding("n1", {}, DIGEST_IMAGE, "localhost/vmrole-test/web:1"))
    op.run()
    assert stored_role(kube)["status"]["image"] == DIGEST_IMAGE
    assert kube.stored(PODS, "ns", resolver["metadata"]["name"]) is None


def test_nodes_that_disagree_on_a_tag_leave_it_to_a_resolver_pod() -> None:
    kube = FakeKube()
    put_role(kube, image="localhost/vmrole-test/web:1", endpoints=ENDPOINTS, autoStart=CHECKS)
    nodes = NodeImages()
    other = "localhost/vmrole-test/web@sha256:" + "c" * 64
    nodes.node_changed(node_holding("n1", {}, DIGEST_IMAGE, "localhost/vmrole-test/web:1"))
    nodes.node_changed(node_holding("n2", {}, other, "localhost/vmrole-test/web:1"))
    op = Operator(kube, nodes)
    op.run()
    assert kube.count("create", "pods") == 1
    assert kube.stored(DEPLOYMENTS, "ns", "web") is None


def test_a_run_with_nothing_changed_writes_nothing_even_after_a_restart() -> None:
    kube = FakeKube()
    put_role(
        kube,
        image=DIGEST_IMAGE,
        endpoints=ENDPOINTS,
        autoStart=CHECKS,
        setup={"command": ["s"], "answerFile": {"data": {"a": "b"}}},
    )
    Operator(kube).run()
    for name in ("web-a", "web-b"):
        instance_pod(kube, stored_role(kube), name)
    Operator(kube).run(Work.STATUS)
    written = len(kube.writes)
    restarted = Operator(kube)
    restarted.run()
    restarted.run(Work.STATUS)
    assert kube.writes[written:] == []
    assert restarted.events == []
    kinds = {
        (w.resource, w.name)
        for w in kube.writes
        if w.verb == "patch" and not w.subresource and w.resource != "pods"
    }
    assert kinds == {
        ("configmaps", "web-answer-file"),
        ("configmaps", "web-instances"),
        ("deployments", "web"),
        ("services", "web"),
        ("services", "web-internal"),
        ("networkpolicies", "web"),
        ("poddisruptionbudgets", "web"),
    }


def test_a_hand_edit_is_repaired_and_a_child_no_longer_asked_for_is_deleted() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, endpoints=ENDPOINTS, autoStart=CHECKS)
    op = Operator(kube)
    op.run()
    kube.patch(DEPLOYMENTS, "ns", "web", {"spec": {"replicas": 7}}, content_type=MERGE_PATCH)
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "mine", "namespace": "ns", "labels": {c.ROLE_LABEL: "web"}},
    }
    kube.put(CONFIGMAPS, foreign)  # labelled like a child, but not owned by the role
    op.run()
    assert kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 2
    assert "RepairedDeployment" in op.reasons()

    kube.patch(VMROLES, "ns", "web", {"spec": {"endpoints": {"internal": None}}}, content_type=MERGE_PATCH)
    op.run()
    assert kube.stored(SERVICES, "ns", "web-internal") is None
    assert kube.stored(NETWORK_POLICIES, "ns", "web") is None
    assert kube.stored(SERVICES, "ns", "web") is not None
    assert kube.stored(CONFIGMAPS, "ns", "mine") is not None  # never delete what is not ours
    assert {"DeletedService", "DeletedNetworkPolicy"} <= set(op.reasons())
    assert kube.count("delete", "services") == 1


@pytest.mark.parametrize("crash_after", [1, 2])
def test_a_reimage_all_token_is_committed_in_status_before_the_template_changes(crash_after: int) -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, autoStart=CHECKS)
    Operator(kube).run()
    annotate_role(kube, **{c.REIMAGE_ANNOTATION: "round-1"})
    first = Operator(kube)
    kube.crash_after(crash_after)
    with pytest.raises(Crash):
        first.run()
    committed = stored_role(kube)["status"]["lastReimage"]
    assert committed["token"] == "round-1"
    template = kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["template"]["metadata"]
    assert (template.get("annotations") or {}).get(c.REIMAGE_ROUND_ANNOTATION) == (
        "round-1" if crash_after == 2 else None
    )

    restarted = Operator(kube)
    restarted.run()
    template = kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["template"]["metadata"]
    assert template["annotations"][c.REIMAGE_ROUND_ANNOTATION] == "round-1"
    assert stored_role(kube)["status"]["lastReimage"]["startedAt"] == committed["startedAt"]
    assert "ReimageAllStarted" not in restarted.reasons()  # the round started once, not twice


def test_a_new_token_supersedes_a_round_still_running() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, autoStart=CHECKS)
    op = Operator(kube)
    op.run()
    annotate_role(kube, **{c.REIMAGE_ANNOTATION: "first"})
    op.run()
    annotate_role(kube, **{c.REIMAGE_ANNOTATION: "second"})
    op.run()
    assert stored_role(kube)["status"]["lastReimage"]["token"] == "second"
    template = kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["template"]["metadata"]
    assert template["annotations"][c.REIMAGE_ROUND_ANNOTATION] == "second"
    assert op.reasons().count("ReimageAllStarted") == 2


def _crash_looping(kube: FakeKube, name: str) -> dict[str, Any]:
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    return instance_pod(kube, stored_role(kube), name, ready=False, restarts=3, main=waiting)


@pytest.mark.parametrize("crash_after", [0, 1])
def test_a_heal_is_recorded_before_it_is_requested_and_requested_once(crash_after: int) -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, healing={"restartThreshold": 2})
    Operator(kube).run()
    pod = _crash_looping(kube, "web-a")
    first = Operator(kube)
    if crash_after:
        kube.crash_on(lambda w: w.subresource == "status")  # dies right after the status write
        with pytest.raises(Crash):
            first.run(Work.STATUS)
        status = stored_role(kube)["status"]
        assert status["heals"] == 1
        assert status["recentHeals"][0]["uid"] == pod["metadata"]["uid"]
        assert c.REIMAGE_ANNOTATION not in (
            kube.stored(PODS, "ns", "web-a")["metadata"].get("annotations") or {}
        )
    else:
        first.run(Work.STATUS)
    again = Operator(kube)
    again.run(Work.STATUS)
    again.run(Work.STATUS)
    annotations = kube.stored(PODS, "ns", "web-a")["metadata"]["annotations"]
    assert annotations[c.REIMAGE_ANNOTATION].startswith("heal.CrashLooping.")
    assert stored_role(kube)["status"]["heals"] == 1
    assert (first.reasons() + again.reasons()).count("Healing") == 1
    pod_patches = [w for w in kube.writes if w.resource == "pods" and w.verb == "patch"]
    assert len(pod_patches) == 1


def test_healing_is_rate_limited_per_role() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=3, healing={"restartThreshold": 1, "maxPerHour": 2})
    Operator(kube).run()
    for name in ("web-a", "web-b", "web-c"):
        _crash_looping(kube, name)
    op = Operator(kube)
    op.run(Work.STATUS)
    status = stored_role(kube)["status"]
    assert status["heals"] == 2
    assert [h["pod"] for h in status["recentHeals"]] == ["web-a", "web-b"]
    assert c.REIMAGE_ANNOTATION not in (kube.stored(PODS, "ns", "web-c")["metadata"].get("annotations") or {})


def test_a_starting_instance_asks_for_a_look_at_its_auto_start_deadline() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, autoStart=CHECKS, autoStartTimeoutSeconds=30)
    op = Operator(kube)
    op.run()
    instance_pod(
        kube, stored_role(kube), "web-a", ready=False, main={"running": {"startedAt": "2026-11-28T11:59:50Z"}}
    )
    wait = op.run(Work.STATUS)
    assert wait is not None
    assert 20 < wait <= 22  # started 10 s before the fake API's "now", deadline 30 s, plus a second


def test_a_role_that_is_gone_is_left_alone() -> None:
    kube = FakeKube()
    assert Operator(kube).run() is None
    assert kube.writes == []


def test_the_instance_list_follows_the_pods_and_running_instances_are_nudged_once() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, endpoints=ENDPOINTS, autoStart=CHECKS)
    op = Operator(kube)
    op.run()
    assert kube.stored(CONFIGMAPS, "ns", "web-instances")["data"] == {"instances": ""}
    instance_pod(kube, stored_role(kube), "web-a", ip="10.244.0.10")
    instance_pod(kube, stored_role(kube), "web-b", ip="10.244.0.11")
    op.run(Work.STATUS)
    assert kube.stored(CONFIGMAPS, "ns", "web-instances")["data"]["instances"] == (
        "web_IN_0 10.244.0.10 peer=10.244.0.10:7000\nweb_IN_1 10.244.0.11 peer=10.244.0.11:7000\n"
    )
    versions = {
        name: kube.stored(PODS, "ns", name)["metadata"]["annotations"][c.ENVIRONMENT_ANNOTATION]
        for name in ("web-a", "web-b")
    }
    assert len(set(versions.values())) == 1  # both told the same content
    # Following the pods is routine, not a repair: an Event each time would be a write per change.
    assert "RepairedConfigMap" not in op.reasons()
    before = len(kube.writes)
    op.run(Work.STATUS)
    assert kube.writes[before:] == []  # told once
    instance_pod(kube, stored_role(kube), "web-c", ip="10.244.0.12")
    op.run()
    assert "web_IN_2 10.244.0.12" in kube.stored(CONFIGMAPS, "ns", "web-instances")["data"]["instances"]
    assert "RepairedConfigMap" not in op.reasons()
    assert op.reasons().count("CreatedConfigMap") == 1


def test_a_replacement_takes_over_the_name_once_it_is_in_rotation() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, autoStart=CHECKS)
    op = Operator(kube)
    op.run()
    victim = instance_pod(kube, stored_role(kube), "web-a", annotations={c.REIMAGE_ANNOTATION: "t"})
    replacement = instance_pod(kube, stored_role(kube), "web-b", ready=False, instance=None)
    replacement["metadata"]["annotations"][c.INSTANCE_NAME_ANNOTATION] = "web_IN_0"  # as the webhook does
    kube.put(PODS, replacement)
    op.run(Work.STATUS)
    assert kube.stored(PODS, "ns", "web-a")["metadata"]["labels"][c.INSTANCE_LABEL] == "web_IN_0"
    replacement = kube.stored(PODS, "ns", "web-b")
    replacement["status"]["conditions"][0]["status"] = "True"  # the kubelet: Ready
    kube.put(PODS, replacement)
    op.run(Work.STATUS)
    assert c.INSTANCE_LABEL not in kube.stored(PODS, "ns", "web-a")["metadata"]["labels"]
    assert kube.stored(PODS, "ns", "web-b")["metadata"]["labels"][c.INSTANCE_LABEL] == "web_IN_0"
    assert "InstanceTakenOver" in op.reasons()
    instances = {i["pod"]: i["name"] for i in stored_role(kube)["status"]["instances"]}
    assert instances == {"web-a": "web_IN_0", "web-b": "web_IN_0"}  # the old one drains, still listed
    assert victim["metadata"]["uid"] == kube.stored(PODS, "ns", "web-a")["metadata"]["uid"]


def test_a_pod_created_while_the_operator_was_down_is_named_when_it_returns() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=2, autoStart=CHECKS)
    op = Operator(kube)
    op.run()
    instance_pod(kube, stored_role(kube), "web-a")
    instance_pod(kube, stored_role(kube), "web-b", instance=None)
    op.run(Work.STATUS)
    meta = kube.stored(PODS, "ns", "web-b")["metadata"]
    assert meta["labels"][c.INSTANCE_LABEL] == "web_IN_1"
    assert meta["annotations"][c.INSTANCE_NAME_ANNOTATION] == "web_IN_1"
    assert meta["annotations"][c.POD_DELETION_COST_ANNOTATION] == "-1"
    assert op.reasons().count("InstanceNamed") == 2  # on the pod and on the role


def test_a_missed_auto_start_deadline_is_told_on_the_role_and_on_the_pod() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=1, autoStart=CHECKS, autoStartTimeoutSeconds=30)
    op = Operator(kube)
    op.run()
    instance_pod(
        kube, stored_role(kube), "web-a", ready=False, main={"running": {"startedAt": "2026-11-28T11:59:00Z"}}
    )
    op.run(Work.STATUS)
    assert ("web", "Warning", "AutoStartFailed") in [e[:3] for e in op.events]
    assert ("web-a", "Warning", "AutoStartTimeout") in [e[:3] for e in op.events]


def test_the_disruption_budget_follows_the_room_to_surge_on_pod_changes_alone() -> None:
    kube = FakeKube()
    put_role(kube, image=DIGEST_IMAGE, instances=2, upgrade={"maxUnavailable": 1, "maxSurge": 0})
    op = Operator(kube)
    op.run()
    budget = kube.stored(DISRUPTION_BUDGETS, "ns", "web")
    assert budget is not None
    assert budget["spec"]["minAvailable"] == 2
    role = stored_role(kube)
    instance_pod(kube, role, "web-a")
    pending = instance_pod(kube, role, "web-b")
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes",
    }
    kube.patch(
        PODS,
        "ns",
        "web-b",
        {"metadata": {"uid": pending["metadata"]["uid"]}, "status": {"conditions": [unschedulable]}},
        content_type=MERGE_PATCH,
        subresource="status",
    )
    op.run(Work.STATUS)  # a pod changed: no spec change, yet the budget moves
    budget = kube.stored(DISRUPTION_BUDGETS, "ns", "web")
    assert budget is not None
    assert budget["spec"]["minAvailable"] == 1
    schedulable = next(x for x in stored_role(kube)["status"]["conditions"] if x["type"] == "Schedulable")
    assert schedulable["reason"] == "NoRoomToSurge"

    kube.patch(
        PODS, "ns", "web-b", {"status": {"conditions": []}}, content_type=MERGE_PATCH, subresource="status"
    )
    op.run(Work.STATUS)
    budget = kube.stored(DISRUPTION_BUDGETS, "ns", "web")
    assert budget is not None
    assert budget["spec"]["minAvailable"] == 2
