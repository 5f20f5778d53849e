"""Named instances and the role environment on the real cluster: `web_IN_0` outlives its pods."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.support.operator_process import OperatorProcess

from .conftest import kubectl
from .incluster import InClusterOperator
from .kube import Kube
from .roles import create_role, get_role, instances, patch_role, role_manifest, wait_available

pytestmark = pytest.mark.usefixtures("operator")

INSTANCE = "vmrole.dev/instance"
FINISHED = ("Failed", "Succeeded")  # pods that never run again, left behind until collected
# Setup records what it saw of the role environment: the name must exist before setup runs.
SETUP_SAW = ["/bin/sh", "-c", "cat /etc/vmrole/role/instance-id > /scratch/setup-saw-name && echo setup done"]


def holders(kube: Kube, namespace: str) -> dict[str, str]:
    """Instance name -> the pod holding it; fails the test if two live pods hold one name."""
    held: dict[str, str] = {}
    for pod in instances(kube, namespace, "web"):
        name = (pod["metadata"].get("labels") or {}).get(INSTANCE)
        if name:
            assert name not in held, f"{name} is held by {held[name]} and {pod['metadata']['name']}"
            held[name] = pod["metadata"]["name"]
    return held


def status_names(kube: Kube, namespace: str) -> dict[str, str]:
    return {
        i["pod"]: i["name"]
        for i in (get_role(kube, namespace, "web").get("status") or {}).get("instances", [])
    }


def read(namespace: str, pod: str, path: str) -> str:
    return kubectl("exec", "-n", namespace, pod, "--", "cat", path)


def settled_names(kube: Kube, namespace: str, count: int) -> dict[str, str]:
    def done() -> dict[str, str] | None:
        held = holders(kube, namespace)
        live = [p for p in instances(kube, namespace, "web") if p["status"].get("phase") not in FINISHED]
        ready = all(kube.pod_ready(namespace, p["metadata"]["name"]) for p in live)
        wanted = {f"web_IN_{n}" for n in range(count)}
        # Held by live pods: a finished pod may still carry its name until the operator takes it off.
        by_live = set(held.values()) <= {p["metadata"]["name"] for p in live}
        return held if set(held) == wanted and len(live) == count and ready and by_live else None

    return kube.wait_for(done, 180, f"names web_IN_0..{count - 1} held by ready pods")


def test_instances_are_named_from_zero_and_setup_already_knows_its_name(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(instances=3, setup={"command": SETUP_SAW}))
    wait_available(kube, namespace, "web", ready=3)
    held = settled_names(kube, namespace, 3)
    for name, pod in held.items():
        assert read(namespace, pod, "/scratch/setup-saw-name") == name  # the webhook named it at creation
        assert read(namespace, pod, "/etc/vmrole/role/instance-id") == name
    kube.wait_for(lambda: set(status_names(kube, namespace).values()) == set(held), 30, "status names")
    assert status_names(kube, namespace) == {pod: name for name, pod in held.items()}
    # Every instance, its IP and its internal endpoint, in number order, in every instance.
    ips = {name: kube.pod(namespace, pod)["status"]["podIP"] for name, pod in held.items()}
    expected = "".join(f"{n} {ips[n]} peer={ips[n]}:7000\n" for n in sorted(held))
    for pod in held.values():
        kube.wait_for(
            lambda pod=pod: read(namespace, pod, "/etc/vmrole/role/instances") == expected, 30, "list"
        )


def test_a_name_survives_a_reimage_with_the_operator_killed_in_the_middle(
    kube: Kube, namespace: str, operator: OperatorProcess | InClusterOperator
) -> None:
    create_role(kube, namespace, role_manifest(instances=2, setup={"command": SETUP_SAW}))
    wait_available(kube, namespace, "web", ready=2)
    before = settled_names(kube, namespace, 2)
    victim = before["web_IN_1"]
    kubectl("annotate", "pod", "-n", namespace, victim, "vmrole.dev/reimage=keep-name")
    time.sleep(1.5)
    operator.stop(signal.SIGKILL)
    time.sleep(0.5)
    operator.start()
    kube.wait_for(
        lambda: victim not in [p["metadata"]["name"] for p in instances(kube, namespace, "web")], 120, "gone"
    )
    after = settled_names(kube, namespace, 2)
    assert after["web_IN_0"] == before["web_IN_0"]
    assert after["web_IN_1"] != victim
    assert read(namespace, after["web_IN_1"], "/scratch/setup-saw-name") == "web_IN_1"


def test_names_are_kept_across_a_reimage_all_and_scale_down_removes_the_highest(
    kube: Kube, namespace: str
) -> None:
    create_role(kube, namespace, role_manifest(instances=3, upgrade={"maxUnavailable": 1, "maxSurge": 1}))
    wait_available(kube, namespace, "web", ready=3)
    before = settled_names(kube, namespace, 3)
    kubectl("annotate", "vmrole", "web", "-n", namespace, "vmrole.dev/reimage=all-names")

    def round_done() -> bool:
        last = (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage") or {}
        return last.get("token") == "all-names" and bool(last.get("completedAt"))

    kube.wait_for(round_done, 240, "reimage-all done")
    after = settled_names(kube, namespace, 3)
    assert set(after.values()).isdisjoint(before.values())  # every pod replaced, every name kept

    patch_role(kube, namespace, "web", {"spec": {"instances": 2}})
    assert set(settled_names(kube, namespace, 2)) == {"web_IN_0", "web_IN_1"}
    assert settled_names(kube, namespace, 2)["web_IN_0"] == after["web_IN_0"]
    patch_role(kube, namespace, "web", {"spec": {"instances": 3}})
    assert "web_IN_2" in settled_names(kube, namespace, 3)  # the lowest free number again


def test_a_pod_started_while_the_operator_is_down_is_named_when_it_returns(
    kube: Kube, namespace: str, operator: OperatorProcess | InClusterOperator
) -> None:
    create_role(kube, namespace, role_manifest(instances=2))
    wait_available(kube, namespace, "web", ready=2)
    before = settled_names(kube, namespace, 2)
    operator.stop()
    try:
        kubectl("delete", "pod", "-n", namespace, before["web_IN_0"], "--wait=false")
        new = kube.wait_for(
            lambda: [
                p for p in instances(kube, namespace, "web") if p["metadata"]["name"] not in before.values()
            ],
            60,
            "the Deployment's replacement",
        )[0]
        annotations = new["metadata"].get("annotations") or {}
        assert "vmrole.dev/instance-name" not in annotations  # nobody named it: the webhook was down
        kube.wait_for(
            lambda: kube.pod_ready(namespace, new["metadata"]["name"]), 90, "it starts all the same"
        )
    finally:
        operator.start()
    after = settled_names(kube, namespace, 2)
    assert after["web_IN_0"] == new["metadata"]["name"]
    kube.wait_for(
        lambda: read(namespace, after["web_IN_0"], "/etc/vmrole/role/instance-id") == "web_IN_0",
        60,
        "its file",
    )
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.kind=VMRole").items
    assert "InstanceNamed" in {e.reason for e in events}


def test_an_evicted_pod_left_behind_gives_its_name_up(kube: Kube, namespace: str) -> None:
    create_role(
        kube,
        namespace,
        role_manifest(instances=1, ephemeralDisk={"mountPaths": ["/scratch"], "sizeLimit": "8Mi"}),
    )
    wait_available(kube, namespace, "web", ready=1)
    [victim] = settled_names(kube, namespace, 1).values()
    # Past its disk's size limit: the kubelet evicts it, and the pod stays behind, finished (Failed,
    # or Succeeded when its processes exited 0 on the way out, as this image's do).
    kubectl(
        "exec", "-n", namespace, victim, "--", "dd", "if=/dev/zero", "of=/scratch/fill", "bs=1M", "count=16"
    )
    kube.wait_for(lambda: kube.pod(namespace, victim)["status"].get("phase") in FINISHED, 120, "evicted")
    after = settled_names(kube, namespace, 1)
    assert after["web_IN_0"] != victim
    left = kube.pod(namespace, victim)
    assert INSTANCE not in (left["metadata"].get("labels") or {})


def test_settings_reach_running_instances_without_replacing_them(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(instances=2, settings={"greeting": "hello"}))
    wait_available(kube, namespace, "web", ready=2)
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
    for pod in pods:
        assert read(namespace, pod, "/etc/vmrole/settings/greeting") == "hello"
    changed = time.monotonic()
    patch_role(kube, namespace, "web", {"spec": {"settings": {"greeting": "hi"}}})
    for pod in pods:
        kube.wait_for(
            lambda pod=pod: read(namespace, pod, "/etc/vmrole/settings/greeting") == "hi", 60, "new value"
        )
    took = time.monotonic() - changed
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in instances(kube, namespace, "web")} == pods
    assert all(
        p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in instances(kube, namespace, "web")
    )
    assert took < 30, f"the new settings took {took:.1f}s to reach every instance"
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.kind=VMRole").items
    assert "SettingsChanged" in {e.reason for e in events}


def test_settings_change_reboot_restarts_every_instance_once_in_place(kube: Kube, namespace: str) -> None:
    create_role(
        kube,
        namespace,
        role_manifest(instances=2, settings={"greeting": "hello"}, settingsChange="Reboot"),
    )
    wait_available(kube, namespace, "web", ready=2)
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
    patch_role(kube, namespace, "web", {"spec": {"settings": {"greeting": "hi"}}})

    def restarted() -> list[Any] | None:
        now = instances(kube, namespace, "web")
        done = [p for p in now if p["status"]["containerStatuses"][0]["restartCount"] == 1]
        return (
            now
            if len(done) == 2 and all(kube.pod_ready(namespace, p["metadata"]["name"]) for p in now)
            else None
        )

    now = kube.wait_for(restarted, 180, "every instance rebooted once")
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in now} == pods
    for pod in pods:
        assert read(namespace, pod, "/etc/vmrole/settings/greeting") == "hi"
