"""Reimage one or all, reboot, busy, image upgrade, healing, bad requests and exactly-once under
operator kills, on the real cluster under real HTTP load."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest

from tests.support.operator_process import OperatorProcess

from .conftest import kubectl
from .kube import Kube, http_get, restricted_pod_spec
from .roles import (
    create_role,
    get_role,
    instances,
    observed_after,
    patch_role,
    ready_role,
    role_manifest,
    settled,
)
from .traffic import EndpointSampler, HttpLoad, audited_pod_deletes

pytestmark = pytest.mark.usefixtures("operator")


def test_reimage_one_under_load_drains_first_and_gives_a_fresh_disk(kube: Kube, namespace: str) -> None:
    role, cluster_ip = ready_role(kube, namespace, 3)
    pods = instances(kube, namespace, "web")
    victim, others = pods[0], pods[1:]
    name, victim_ip = victim["metadata"]["name"], victim["status"]["podIP"]
    kubectl("exec", "-n", namespace, name, "--", "sh", "-c", "echo old > /scratch/marker")

    with HttpLoad(f"http://{cluster_ip}/version") as load, EndpointSampler(kube, namespace, "web") as sampler:
        time.sleep(1)
        kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/reimage=e2e-one")
        kube.wait_for(lambda: settled(kube, namespace, 3, {victim["metadata"]["uid"]}), 120, "reimage done")
        time.sleep(1)

    assert load.total > 50
    assert load.failures == [], load.failures[:5]
    # The victim was not ready in the EndpointSlice while not yet terminating: drained before deletion.
    assert sampler.left_rotation_before_termination(victim_ip), sampler.samples[-5:]
    # Surge first: the role never had fewer than 3 instances in rotation.
    assert min(sampler.ready_counts()) >= 3, sampler.ready_counts()

    now = instances(kube, namespace, "web")
    assert {p["metadata"]["uid"] for p in others} <= {p["metadata"]["uid"] for p in now}
    replacement = next(p for p in now if p["metadata"]["uid"] not in {o["metadata"]["uid"] for o in others})
    assert (
        replacement["status"]["containerStatuses"][0]["imageID"]
        == victim["status"]["containerStatuses"][0]["imageID"]
    )
    assert replacement["spec"]["containers"][0]["image"] == role["status"]["image"]
    listing = kubectl("exec", "-n", namespace, replacement["metadata"]["name"], "--", "ls", "/scratch")
    assert "marker" not in listing.split()
    assert "unattend.xml" in listing.split()  # setup ran again on the fresh disk
    deletes = audited_pod_deletes(namespace)
    assert deletes[name] == 1
    events = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    assert {"ReimageStarted", "Reimaged"} <= {e.reason for e in events}
    assert any("e2e-one" in (e.message or "") for e in events)


def test_reimage_all_keeps_max_unavailable_and_each_token_runs_once(kube: Kube, namespace: str) -> None:
    _, cluster_ip = ready_role(kube, namespace, 3, upgrade={"maxUnavailable": 1, "maxSurge": 0})
    originals = {p["metadata"]["uid"]: p["metadata"]["name"] for p in instances(kube, namespace, "web")}

    with HttpLoad(f"http://{cluster_ip}/version") as load, EndpointSampler(kube, namespace, "web") as sampler:
        kubectl("annotate", "vmrole", "web", "-n", namespace, "vmrole.dev/reimage=round-1")

        def completed() -> dict[str, Any] | None:
            last = (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage") or {}
            return last if last.get("token") == "round-1" and last.get("completedAt") else None

        last = kube.wait_for(completed, 180, "reimage-all round-1 completed")
        kube.wait_for(lambda: settled(kube, namespace, 3, set(originals)), 60, "every instance replaced")
    assert last["startedAt"] <= last["completedAt"]
    assert load.failures == [], load.failures[:5]
    # Never more than maxUnavailable (1) of the 3 instances out of rotation.
    assert min(sampler.ready_counts()) >= 2, sampler.ready_counts()
    deletes = audited_pod_deletes(namespace)
    assert all(deletes[n] == 1 for n in originals.values()), deletes

    # The same token again changes nothing, even when the role is touched.
    after = {p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
    patch_role(
        kube,
        namespace,
        "web",
        {"metadata": {"annotations": {"vmrole.dev/reimage": "round-1", "e2e/touch": "1"}}},
    )
    observed_after(kube, namespace, "web")
    assert {p["metadata"]["uid"] for p in instances(kube, namespace, "web")} == after
    assert get_role(kube, namespace, "web")["status"]["lastReimage"] == last


def test_new_token_during_a_round_supersedes_it(kube: Kube, namespace: str) -> None:
    ready_role(kube, namespace, 2)
    kubectl("annotate", "vmrole", "web", "-n", namespace, "vmrole.dev/reimage=first")
    kube.wait_for(
        lambda: (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage"), 30, "round 1"
    )
    kubectl("annotate", "vmrole", "web", "-n", namespace, "vmrole.dev/reimage=second", "--overwrite")

    def second_done() -> bool:
        last = (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage") or {}
        return last.get("token") == "second" and bool(last.get("completedAt"))

    kube.wait_for(second_done, 180, "round 'second' completed")
    template = kube.apps.read_namespaced_deployment("web", namespace).spec.template.metadata.annotations
    assert template["vmrole.dev/reimage-round"] == "second"
    for pod in instances(kube, namespace, "web"):
        assert pod["metadata"]["annotations"]["vmrole.dev/reimage-round"] == "second"


def test_reboot_keeps_pod_ip_and_disk_and_restarts_containers(kube: Kube, namespace: str) -> None:
    ready_role(kube, namespace, 1)
    pod = instances(kube, namespace, "web")[0]
    name, uid, ip = pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"]["podIP"]
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    kubectl("exec", "-n", namespace, name, "--", "sh", "-c", "echo kept > /scratch/marker")

    with EndpointSampler(kube, namespace, "web") as sampler:
        kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/reboot=r-1")
        kube.wait_for(
            lambda: kube.pod(namespace, name)["status"]["containerStatuses"][0]["restartCount"] > restarts,
            60,
            "container restarted",
        )
        kube.wait_for(lambda: kube.endpoint_states(namespace, "web").get(ip), 60, "back in rotation")
    assert sampler.left_rotation_before_termination(ip), "never left rotation"
    after = kube.pod(namespace, name)
    assert after["metadata"]["uid"] == uid
    assert after["status"]["podIP"] == ip
    assert after["status"]["containerStatuses"][0]["restartCount"] == restarts + 1
    assert after["status"]["initContainerStatuses"][0]["restartCount"] == 0  # setup did not run again
    assert kubectl("exec", "-n", namespace, name, "--", "cat", "/scratch/marker").strip() == "kept"

    # The same token again does nothing. The busy request after it is the positive signal: the
    # operator handles a pod's events in order, so once busy took effect the touch was seen too.
    kube.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {"e2e/touch": "1"}}})
    kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/busy=true")
    kube.wait_for(
        lambda: kube.pod(namespace, name)["metadata"]["labels"].get("vmrole.dev/in-rotation") == "busy",
        30,
        "busy handled after the touch",
    )
    assert kube.pod(namespace, name)["status"]["containerStatuses"][0]["restartCount"] == restarts + 1


def test_busy_takes_an_instance_out_of_rotation_without_restart(kube: Kube, namespace: str) -> None:
    ready_role(kube, namespace, 2)
    pod = instances(kube, namespace, "web")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]

    def state() -> str | None:
        for i in (get_role(kube, namespace, "web").get("status") or {}).get("instances", []):
            if i["pod"] == name:
                return str(i["state"])
        return None

    kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/busy=true")
    kube.wait_for(lambda: not kube.endpoint_states(namespace, "web").get(ip), 30, "out of rotation")
    kube.wait_for(lambda: state() == "BusyRole", 30, "BusyRole")
    # Out of the Service, not out of the kubelet's view: the Deployment (and a PodDisruptionBudget)
    # still count a busy instance available.
    assert kube.pod_ready(namespace, name)
    assert kube.pod(namespace, name)["metadata"]["labels"]["vmrole.dev/in-rotation"] == "busy"
    kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/busy=false", "--overwrite")
    kube.wait_for(lambda: kube.endpoint_states(namespace, "web").get(ip), 30, "back in rotation")
    kube.wait_for(lambda: state() == "ReadyRole", 30, "ReadyRole")
    assert kube.pod(namespace, name)["status"]["containerStatuses"][0]["restartCount"] == 0
    reasons = {
        e.reason
        for e in kube.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        ).items
    }
    assert {"InstanceBusy", "InstanceNotBusy"} <= reasons


def test_image_upgrade_rolls_without_failed_requests_and_pause_holds(kube: Kube, namespace: str) -> None:
    _, cluster_ip = ready_role(kube, namespace, 3, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    patch_role(kube, namespace, "web", {"spec": {"upgrade": {"paused": True}}})
    patch_role(kube, namespace, "web", {"spec": {"image": "localhost/vmrole-test/web:2"}})
    generation = get_role(kube, namespace, "web")["metadata"]["generation"]

    def paused_at_new_image() -> dict[str, Any] | None:
        status = get_role(kube, namespace, "web").get("status") or {}
        progressing = next((x for x in status.get("conditions") or [] if x["type"] == "Progressing"), {})
        seen = status.get("observedGeneration", 0) >= generation and status.get("specImage", "").endswith(
            ":2"
        )
        return progressing if seen and progressing.get("reason") == "RolloutPaused" else None

    # The operator has pinned :2 and holds the walk: only then does "nothing moved" mean anything.
    kube.wait_for(paused_at_new_image, 60, "the new image pinned and the walk paused")
    assert {http_version(cluster_ip) for _ in range(10)} == {"1"}, "the walk moved while paused"

    with HttpLoad(f"http://{cluster_ip}/version") as load:
        patch_role(kube, namespace, "web", {"spec": {"upgrade": {"paused": False}}})

        def upgraded() -> bool:
            status = get_role(kube, namespace, "web").get("status") or {}
            return (
                status.get("specImage") == "localhost/vmrole-test/web:2"
                and status.get("readyReplicas") == 3
                and all(
                    p["spec"]["containers"][0]["image"] == status["image"]
                    for p in instances(kube, namespace, "web")
                )
            )

        kube.wait_for(upgraded, 180, "upgrade to :2")
        kube.wait_for(lambda: {http_version(cluster_ip) for _ in range(10)} == {"2"}, 30, "only :2 answering")
    assert load.failures == [], load.failures[:5]
    assert load.bodies["1"] > 0
    assert load.bodies["2"] > 0


def http_version(cluster_ip: str) -> str:
    return http_get(f"http://{cluster_ip}/version")


CRASHING = ["/bin/sh", "-c", "echo up; sleep 1; exit 3"]


def test_healing_reimages_a_crash_looping_instance_unless_switched_off(kube: Kube, namespace: str) -> None:
    spec = {"command": CRASHING, "autoStart": [], "endpoints": {}, "healing": {"restartThreshold": 1}}
    create_role(kube, namespace, role_manifest("healed", **spec))
    create_role(
        kube,
        namespace,
        role_manifest("left", **{**spec, "healing": {"enabled": False, "restartThreshold": 1}}),
    )
    left_uid = kube.wait_for(lambda: kube.pods(namespace, "vmrole.dev/role=left"), 60, "left pod")[0][
        "metadata"
    ]["uid"]

    def heals() -> int:
        return int((get_role(kube, namespace, "healed").get("status") or {}).get("heals") or 0)

    kube.wait_for(lambda: heals() >= 1, 120, "an automatic reimage")

    def healing_event() -> bool:
        events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.name=healed").items
        return any(e.reason == "Healing" and "CrashLooping" in (e.message or "") for e in events)

    # Events are posted in the background, after the status write that counts the heal.
    kube.wait_for(healing_event, 30, "the Healing Event")
    record = get_role(kube, namespace, "healed")["status"]["recentHeals"][0]
    kube.wait_for(
        lambda: (
            record["uid"]
            not in {p["metadata"]["uid"] for p in kube.pods(namespace, "vmrole.dev/role=healed")}
        ),
        60,
        "healed instance replaced",
    )

    # Between two runs in its crash loop the instance is RestartingRole for a moment (its container
    # has exited, the kubelet has not yet reported the back-off), so wait for the state, not sample it.
    def left_failed() -> bool:
        instances = (get_role(kube, namespace, "left").get("status") or {}).get("instances") or []
        return bool(instances) and instances[0]["state"] == "FailedStartingRole"

    kube.wait_for(left_failed, 60, "the unhealed instance FailedStartingRole")
    left = get_role(kube, namespace, "left")
    assert int(left["status"].get("heals") or 0) == 0
    assert left_uid in {p["metadata"]["uid"] for p in kube.pods(namespace, "vmrole.dev/role=left")}


def test_bad_requests_get_a_warning_and_change_nothing(kube: Kube, namespace: str) -> None:
    ready_role(kube, namespace, 1)
    instance = instances(kube, namespace, "web")[0]
    name, uid = instance["metadata"]["name"], instance["metadata"]["uid"]
    kube.core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bystander"},
            "spec": restricted_pod_spec(),
        },
    )
    kubectl("annotate", "pod", "-n", namespace, "bystander", "vmrole.dev/reimage=now")
    kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/busy=maybe")
    kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/reimage=not a token!")

    def warnings() -> set[tuple[str, str]]:
        return {
            (e.involved_object.name, e.reason)
            for e in kube.core.list_namespaced_event(namespace).items
            if e.type == "Warning"
        }

    kube.wait_for(
        lambda: {("bystander", "NotAnInstance"), (name, "InvalidRequest")} <= warnings(),
        30,
        "warnings for the bad requests",
    )
    # The Warnings are the positive signal: the operator has seen both requests.
    assert kube.pod(namespace, "bystander")["metadata"].get("deletionTimestamp") is None
    assert kube.pod(namespace, name)["metadata"]["uid"] == uid
    assert kube.pod(namespace, name)["metadata"].get("deletionTimestamp") is None
    assert kube.pod_ready(namespace, name)
    messages = [
        e.message for e in kube.core.list_namespaced_event(namespace).items if e.reason == "InvalidRequest"
    ]
    assert any("vmrole.dev/busy='maybe'" in m for m in messages), messages
    assert any("vmrole.dev/reimage='not a token!'" in m for m in messages), messages


def test_killed_operator_finishes_every_request_exactly_once(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ready_role(kube, namespace, 2, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    rng = random.Random(20261122)
    for trial in range(10):
        before = {p["metadata"]["uid"]: p["metadata"]["name"] for p in instances(kube, namespace, "web")}
        if trial % 2 == 0:
            kubectl(
                "annotate",
                "vmrole",
                "web",
                "-n",
                namespace,
                f"vmrole.dev/reimage=kill-{trial}",
                "--overwrite",
            )
            gone = set(before)
        else:
            uid, name = next(iter(before.items()))
            kubectl("annotate", "pod", "-n", namespace, name, f"vmrole.dev/reimage=kill-{trial}")
            gone = {uid}
        time.sleep(rng.uniform(0.0, 4.0))
        operator.stop(signal.SIGKILL)
        time.sleep(rng.uniform(0.0, 1.0))
        operator.start()
        kube.wait_for(lambda gone=gone: settled(kube, namespace, 2, gone), 180, f"trial {trial} completed")
        if trial % 2 == 0:
            last = get_role(kube, namespace, "web")["status"]["lastReimage"]
            kube.wait_for(
                lambda: get_role(kube, namespace, "web")["status"]["lastReimage"].get("completedAt"),
                60,
                f"round kill-{trial} recorded complete",
            )
            assert last["token"] == f"kill-{trial}"
    deletes = audited_pod_deletes(namespace)
    assert deletes, "no pod deletion in the audit log"
    assert max(deletes.values()) == 1, deletes
    assert all(kube.pod_ready(namespace, p["metadata"]["name"]) for p in instances(kube, namespace, "web"))
