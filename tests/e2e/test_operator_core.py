"""From `kubectl apply` of a VMRole to load-balanced instances of a pinned golden image (real cluster)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from kubernetes.client.rest import ApiException

from tests.support.operator_process import OperatorProcess

from .conftest import REPO, kubectl
from .kube import Kube, http_get
from .roles import (
    ANSWER,
    condition,
    create_role,
    get_role,
    instances,
    role_manifest,
    wait_available,
)

pytestmark = pytest.mark.usefixtures("operator")


def _owned_by(obj: object, role_uid: str) -> bool:
    refs = obj.metadata.owner_references or []  # type: ignore[attr-defined]
    return any(r.uid == role_uid and r.kind == "VMRole" and r.controller for r in refs)


def test_example_role_creates_owned_children_and_deleting_it_removes_them(kube: Kube, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "web.yaml"))
    role = wait_available(kube, namespace, "web", ready=3)
    uid = role["metadata"]["uid"]

    deployment = kube.apps.read_namespaced_deployment("web", namespace)
    services = {s.metadata.name: s for s in kube.core.list_namespaced_service(namespace).items}
    policy = kube.networking.read_namespaced_network_policy("web", namespace)
    answer = kube.core.read_namespaced_config_map("web-answer-file", namespace)
    for child in (deployment, services["web"], services["web-internal"], policy, answer):
        assert _owned_by(child, uid), f"{child.kind} {child.metadata.name} is not owned by the role"
        assert child.metadata.labels["vmrole.dev/role"] == "web"
    assert services["web-internal"].spec.cluster_ip == "None"
    assert kube.apps.list_namespaced_stateful_set(namespace).items == []
    assert role["status"]["image"].startswith("localhost/vmrole-test/web@sha256:")
    assert deployment.spec.template.spec.containers[0].image == role["status"]["image"]
    assert role["status"]["selector"] == "vmrole.dev/role=web"
    assert [i["state"] for i in role["status"]["instances"]] == ["ReadyRole"] * 3

    table = kubectl("get", "vmr", "web", "-n", namespace)
    assert table.split("\n")[0].split() == ["NAME", "IMAGE", "INSTANCES", "READY", "AVAILABLE", "AGE"]
    assert table.split("\n")[1].split()[1:5] == ["localhost/vmrole-test/web:1", "3", "3", "True"]
    wide = kubectl("get", "vmr", "web", "-n", namespace, "-o", "wide").split("\n")
    assert wide[0].split()[-1] == "PINNED"
    assert wide[1].split()[-1] == role["status"]["image"]

    kubectl("delete", "vmrole", "web", "-n", namespace, "--wait=true")
    kube.wait_for(
        lambda: not kube.apps.list_namespaced_deployment(namespace).items, 60, "Deployment collected"
    )
    kube.wait_for(
        lambda: not [s for s in kube.core.list_namespaced_service(namespace).items], 60, "Services collected"
    )
    kube.wait_for(
        lambda: not kube.networking.list_namespaced_network_policy(namespace).items, 60, "policy collected"
    )
    kube.wait_for(lambda: not instances(kube, namespace, "web"), 60, "instances gone")
    # Only its children: the namespace's own ConfigMap is untouched.
    assert kube.core.read_namespaced_config_map("kube-root-ca.crt", namespace)


def test_read_only_root_writable_ephemeral_disk_and_answer_file_through_setup(
    kube: Kube, namespace: str
) -> None:
    create_role(kube, namespace, role_manifest())
    wait_available(kube, namespace, "web", ready=1)
    pod = instances(kube, namespace, "web")[0]["metadata"]["name"]

    root = subprocess.run(
        ["kubectl", "exec", "-n", namespace, pod, "--", "touch", "/written-to-root"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert root.returncode != 0
    assert "Read-only file system" in root.stderr
    kubectl("exec", "-n", namespace, pod, "--", "touch", "/scratch/written-to-disk")
    assert kubectl("exec", "-n", namespace, pod, "--", "cat", "/scratch/unattend.xml") == ANSWER
    logs = kubectl("logs", "-n", namespace, pod, "-c", "setup")
    assert "setup done" in logs


def test_instance_enters_rotation_only_after_auto_start(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(env=[{"name": "START_DELAY", "value": "8"}]))
    pod = kube.wait_for(
        lambda: [
            p
            for p in instances(kube, namespace, "web")
            if p["status"].get("podIP")
            and any(c.get("state", {}).get("running") for c in p["status"].get("containerStatuses") or [])
        ],
        60,
        "running instance",
    )[0]
    ip = pod["status"]["podIP"]
    started = time.monotonic()
    listed_unready = kube.wait_for(
        lambda: kube.endpoint_states(namespace, "web").get(ip) is False, 30, "instance listed as not ready"
    )
    assert listed_unready
    states = {i["pod"]: i["state"] for i in get_role(kube, namespace, "web")["status"].get("instances", [])}
    assert states.get(pod["metadata"]["name"]) in {"StartingRole", "StartingVM", "CreatingVM"}

    kube.wait_for(
        lambda: kube.endpoint_states(namespace, "web").get(ip), 60, "instance ready in the EndpointSlice"
    )
    assert time.monotonic() - started > 3, "the instance joined rotation before its service could answer"
    cluster_ip = kube.core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert kube.wait_for(lambda: http_get(f"http://{cluster_ip}/version"), 30, "HTTP via ClusterIP") == "1"


def test_main_process_killed_leaves_rotation_until_back_and_keeps_disk(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(env=[{"name": "START_DELAY", "value": "4"}]))
    wait_available(kube, namespace, "web", ready=1)
    pod = instances(kube, namespace, "web")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    kubectl("exec", "-n", namespace, name, "--", "sh", "-c", "echo before > /scratch/marker")

    # The exec may die with the container it killed (137 on kind): its exit code says nothing.

    kubectl("exec", "-n", namespace, name, "--", "kill", "1", check=False)
    kube.wait_for(lambda: kube.endpoint_states(namespace, "web").get(ip) is False, 30, "out of rotation")
    kube.wait_for(lambda: kube.endpoint_states(namespace, "web").get(ip), 90, "back in rotation")
    after = kube.pod(namespace, name)
    assert after["status"]["containerStatuses"][0]["restartCount"] >= 1
    assert kubectl("exec", "-n", namespace, name, "--", "cat", "/scratch/marker").strip() == "before"
    # setup did not run again: the init container ran once.
    assert after["status"]["initContainerStatuses"][0]["restartCount"] == 0


def test_failing_setup_is_failed_starting_vm_degraded_with_warning_event(kube: Kube, namespace: str) -> None:
    create_role(
        kube, namespace, role_manifest(setup={"command": ["/bin/sh", "-c", "echo broken answer; exit 1"]})
    )

    def failed() -> dict[str, object] | None:
        role = get_role(kube, namespace, "web")
        degraded = condition(role, "Degraded")
        states = [i["state"] for i in (role.get("status") or {}).get("instances", [])]
        return role if states == ["FailedStartingVM"] and degraded and degraded["status"] == "True" else None

    role = kube.wait_for(failed, 90, "FailedStartingVM and Degraded")
    assert role["status"]["readyReplicas"] == 0
    ip = instances(kube, namespace, "web")[0]["status"].get("podIP")
    assert not any(kube.endpoint_states(namespace, "web").values()), ip
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.kind=VMRole").items
    assert any(e.type == "Warning" and e.reason == "SetupFailed" for e in events), [e.reason for e in events]


@pytest.mark.serial  # moves the test image's tag for the whole cluster while it runs
def test_pinned_role_ignores_a_moved_tag(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest())
    role = wait_available(kube, namespace, "web", ready=1)
    pinned = role["status"]["image"]
    containerd = REPO / ".cluster" / "containerd" / "containerd.sock"
    target = ["--containerd", str(containerd)] if containerd.exists() else ["--kind", "vmrole"]
    images = [sys.executable, str(REPO / "hack" / "images.py")]
    subprocess.run(
        [*images, "repoint-tag", "localhost/vmrole-test/web:1", "--version", "moved", *target], check=True
    )
    try:
        old = instances(kube, namespace, "web")[0]["metadata"]["uid"]
        kubectl("delete", "pod", "-n", namespace, "-l", "vmrole.dev/role=web", "--wait=false")
        new = kube.wait_for(
            lambda: [
                p
                for p in instances(kube, namespace, "web")
                if p["metadata"]["uid"] != old and kube.pod_ready(namespace, p["metadata"]["name"])
            ],
            90,
            "replacement ready",
        )[0]
        role = wait_available(kube, namespace, "web", ready=1)
        assert new["spec"]["containers"][0]["image"] == pinned
        assert kubectl("exec", "-n", namespace, new["metadata"]["name"], "--", "cat", "/www/version") == "1"
        assert role["status"]["image"] == pinned
    finally:
        subprocess.run([*images, "load", *target], check=True, capture_output=True)


def test_scale_subresource(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(instances=2))
    wait_available(kube, namespace, "web", ready=2)
    kubectl("scale", "vmrole", "web", "-n", namespace, "--replicas=4")
    kubectl("wait", "-n", namespace, "--for=condition=Available", "vmrole/web", "--timeout=120s", timeout=130)
    role = wait_available(kube, namespace, "web", ready=4)
    assert role["spec"]["instances"] == 4
    assert len(instances(kube, namespace, "web")) == 4
    assert kube.apps.read_namespaced_deployment("web", namespace).spec.replicas == 4


def test_children_deleted_or_edited_by_hand_are_restored(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest())
    wait_available(kube, namespace, "web", ready=1)
    kube.core.delete_namespaced_service("web", namespace)
    kube.wait_for(lambda: kube.core.read_namespaced_service("web", namespace), 30, "Service recreated")
    kube.apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    kube.wait_for(
        lambda: kube.apps.read_namespaced_deployment("web", namespace).spec.replicas == 1,
        30,
        "replicas restored",
    )
    kube.networking.delete_namespaced_network_policy("web", namespace)
    kube.wait_for(
        lambda: kube.networking.read_namespaced_network_policy("web", namespace), 30, "policy recreated"
    )
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.kind=VMRole").items
    reasons = {e.reason for e in events}
    assert {"CreatedService", "RepairedDeployment", "CreatedNetworkPolicy"} <= reasons, reasons


def test_auto_start_deadline_makes_failed_starting_role(kube: Kube, namespace: str) -> None:
    manifest = role_manifest(
        autoStart=[{"name": "never", "tcpSocket": {"port": 9999}}],
        autoStartTimeoutSeconds=4,
        endpoints={"internal": [{"name": "peer", "port": 7000}]},
        healing={"enabled": False},  # the state itself, not the reimage that would follow it
    )
    create_role(kube, namespace, manifest)

    def failed_starting_role() -> bool:
        states = [
            i["state"] for i in (get_role(kube, namespace, "web").get("status") or {}).get("instances", [])
        ]
        return states == ["FailedStartingRole"]

    kube.wait_for(failed_starting_role, 60, "FailedStartingRole")
    events = kube.core.list_namespaced_event(namespace).items
    assert any(e.reason == "AutoStartTimeout" and e.type == "Warning" for e in events)


def test_operator_restart_with_nothing_changed_writes_nothing(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    create_role(kube, namespace, role_manifest(instances=2))
    wait_available(kube, namespace, "web", ready=2)

    def versions() -> dict[str, str]:
        out = {"vmrole": get_role(kube, namespace, "web")["metadata"]["resourceVersion"]}
        for kind, objs in (
            ("deploy", kube.apps.list_namespaced_deployment(namespace).items),
            ("svc", kube.core.list_namespaced_service(namespace).items),
            ("netpol", kube.networking.list_namespaced_network_policy(namespace).items),
            ("cm", kube.core.list_namespaced_config_map(namespace).items),
            ("pod", kube.core.list_namespaced_pod(namespace).items),
        ):
            out.update({f"{kind}/{o.metadata.name}": o.metadata.resource_version for o in objs})
        return out

    def quiet() -> dict[str, str] | None:
        # The last status, name and file updates have landed: two reads 2 s apart agree.
        first = versions()
        time.sleep(2)
        return first if versions() == first else None

    before = kube.wait_for(quiet, 60, "the role at rest")
    offset = operator.log_size()
    operator.restart()
    kube.wait_for(
        lambda: operator.handled(offset, namespace, "web"), 60, "the restarted operator to handle the role"
    )
    assert versions() == before


def test_restricted_namespace_admits_the_instances(kube: Kube, namespace: str) -> None:
    labels = kube.core.read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    create_role(kube, namespace, role_manifest())
    wait_available(kube, namespace, "web", ready=1)
    pod = instances(kube, namespace, "web")[0]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    with pytest.raises(ApiException):
        # The same namespace still refuses anything less than restricted.
        kube.core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "root"},
                "spec": {"containers": [{"name": "c", "image": pod["spec"]["containers"][0]["image"]}]},
            },
        )


def test_a_tag_the_nodes_hold_is_pinned_from_their_image_lists_with_no_resolver_pod(
    kube: Kube, namespace: str
) -> None:
    tag = "localhost/vmrole-test/web:1"
    held = {
        name.split("@", 1)[1]
        for node in kube.core.list_node().items
        for image in node.status.images or []
        if tag in (image.names or [])
        for name in image.names or []
        if name.startswith("localhost/vmrole-test/web@sha256:")
    }
    if len(held) != 1:
        pytest.skip(f"the nodes do not list {tag} under one digest: {held}")
    create_role(kube, namespace, role_manifest(image=tag))
    role = wait_available(kube, namespace, "web", ready=1)
    assert role["status"]["image"] == f"localhost/vmrole-test/web@{held.pop()}"

    def reasons() -> dict[str, str]:
        events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.name=web").items
        return {e.reason: e.message or "" for e in events}

    kube.wait_for(lambda: "ImagePinned" in reasons(), 30, "the ImagePinned Event")
    assert reasons()["ImagePinned"].endswith("(the digest its nodes hold)")
    assert "ResolvingImage" not in reasons()
