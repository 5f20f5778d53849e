"""What only the operator can judge, on a real cluster: each problem is a Degraded reason and one
Warning Event, never a crash or a retry loop; a namespace being deleted ends the work quietly."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest
from kubernetes import client

from tests.support.operator_process import OperatorProcess

from .conftest import kubectl
from .incluster import InClusterOperator
from .kube import WEB_IMAGE, Kube
from .roles import condition, create_role, get_role, role_manifest, wait_available

pytestmark = pytest.mark.usefixtures("operator")

Operator = OperatorProcess | InClusterOperator
# A digest no registry and no node has: pulling it fails at once on an offline node.
MISSING_DIGEST = f"{WEB_IMAGE}@sha256:{'0' * 64}"


def wait_degraded(kube: Kube, namespace: str, name: str, reason: str, timeout: float = 90) -> dict[str, Any]:
    def degraded() -> dict[str, Any] | None:
        cond = condition(get_role(kube, namespace, name), "Degraded")
        return cond if cond is not None and (cond["status"], cond["reason"]) == ("True", reason) else None

    return kube.wait_for(degraded, timeout, f"{name} Degraded for {reason}")


def role_warnings(kube: Kube, namespace: str, name: str, reason: str) -> list[str]:
    events = kube.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=VMRole,involvedObject.name={name},reason={reason}"
    ).items
    return [e.message for e in events if e.type == "Warning"]


def assert_told_once(kube: Kube, namespace: str, name: str, reason: str) -> None:
    """One Event, even though the role is reconciled again meanwhile (its pods keep changing)."""
    kube.wait_for(lambda: role_warnings(kube, namespace, name, reason), 30, f"a {reason} Event on {name}")
    time.sleep(5)
    told = role_warnings(kube, namespace, name, reason)
    assert len(told) == 1, told


def test_a_missing_answer_file_config_map_or_secret(kube: Kube, namespace: str) -> None:
    setup = {"command": ["/bin/sh", "-c", "cat /etc/vmrole/answer/unattend.xml"]}
    create_role(
        kube, namespace, role_manifest("cm", setup={**setup, "answerFile": {"configMapName": "unattend"}})
    )
    create_role(
        kube, namespace, role_manifest("sec", setup={**setup, "answerFile": {"secretName": "unattend"}})
    )

    cond = wait_degraded(kube, namespace, "cm", "AnswerFileMissing", 60)
    assert cond["message"].startswith(
        "ConfigMap unattend (spec.setup.answerFile.configMapName) does not exist"
    )
    assert_told_once(kube, namespace, "cm", "AnswerFileMissing")
    kube.core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="unattend"), data={"unattend.xml": "<a/>"}),
    )
    # The kubelet retries the mount with a growing back-off, a few seconds at this point.
    role = wait_available(kube, namespace, "cm", ready=1, timeout=120)
    assert condition(role, "Degraded")["status"] == "False"  # type: ignore[index]

    # A Secret the operator may not read: judged from how long the instance waits for its volumes.
    cond = wait_degraded(kube, namespace, "sec", "AnswerFileMissing", 90)
    assert "Secret unattend (spec.setup.answerFile.secretName) is missing" in cond["message"]
    assert_told_once(kube, namespace, "sec", "AnswerFileMissing")


def test_an_image_that_cannot_be_pulled_by_tag_or_by_digest(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest("bytag", image=f"{WEB_IMAGE}:no-such-tag"))
    create_role(kube, namespace, role_manifest("bydigest", image=MISSING_DIGEST))
    cond = wait_degraded(kube, namespace, "bytag", "ImageResolutionFailed")
    assert cond["message"].startswith(f"spec.image {WEB_IMAGE}:no-such-tag: ")
    cond = wait_degraded(kube, namespace, "bydigest", "ImagePullFailed")
    assert "bydigest_IN_0: " in cond["message"]
    assert_told_once(kube, namespace, "bytag", "ImageResolutionFailed")
    assert_told_once(kube, namespace, "bydigest", "ImagePullFailed")
    # Nothing runs an image that was never pinned.
    assert kube.apps.list_namespaced_deployment(namespace, label_selector="vmrole.dev/role=bytag").items == []


def test_an_unschedulable_role(kube: Kube, namespace: str) -> None:
    nowhere = {"vmrole.dev/e2e-no-such-node": "true"}
    # A tag is resolved by a pod placed like the instances; a digest needs none, so its instance tells.
    create_role(kube, namespace, role_manifest("bytag", nodeSelector=nowhere))
    create_role(kube, namespace, role_manifest("bydigest", image=MISSING_DIGEST, nodeSelector=nowhere))
    cond = wait_degraded(kube, namespace, "bytag", "Unschedulable")
    assert cond["message"].startswith("image resolver pod bytag-resolve-")
    assert re.search(r" not scheduled: 0/\d+ nodes are available: ", cond["message"]), cond
    cond = wait_degraded(kube, namespace, "bydigest", "Unschedulable")
    assert re.match(r"bydigest_IN_0 not scheduled: 0/\d+ nodes are available: ", cond["message"]), cond
    assert_told_once(kube, namespace, "bytag", "Unschedulable")
    assert_told_once(kube, namespace, "bydigest", "Unschedulable")


def limit_pods(kube: Kube, namespace: str, pods: int) -> client.V1ResourceQuota:
    hard = {"pods": str(pods)}
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="pods"), spec=client.V1ResourceQuotaSpec(hard=hard)
    )
    kube.core.create_namespaced_resource_quota(namespace, quota)
    # Until the quota controller has counted, the API server refuses every pod of the namespace.
    kube.wait_for(
        lambda: (kube.core.read_namespaced_resource_quota("pods", namespace).status.used or {}).get("pods"),
        30,
        "the quota counted",
    )
    return quota


def test_a_quota_that_refuses_instances(kube: Kube, namespace: str) -> None:
    quota = limit_pods(kube, namespace, 1)
    create_role(kube, namespace, role_manifest(instances=2))
    cond = wait_degraded(kube, namespace, "web", "QuotaExceeded")
    assert cond["message"].startswith("instances not created: ")
    assert "exceeded quota: pods" in cond["message"]
    assert_told_once(kube, namespace, "web", "QuotaExceeded")
    quota.spec.hard = {"pods": "2"}
    kube.core.replace_namespaced_resource_quota("pods", namespace, quota)
    # The ReplicaSet controller retries a refused create with a per-object exponential backoff (up
    # to 1,000 s) and does not watch quotas; any change to the ReplicaSet syncs it at once. That is
    # Kubernetes' part; what is tested here is that the role recovers once the pods exist.
    kubectl("annotate", "replicaset", "-n", namespace, "-l", "vmrole.dev/role=web", "e2e.vmrole.dev/nudge=1")
    wait_available(kube, namespace, "web", ready=2, timeout=120)
    kube.wait_for(
        lambda: condition(get_role(kube, namespace, "web"), "Degraded")["status"] == "False",  # type: ignore[index]
        60,
        "Degraded cleared",
    )


def _hold_role_deletion(namespace: str) -> str:
    """A ValidatingAdmissionPolicy that refuses to delete the namespace's VMRoles, so the namespace
    controller empties everything around the role while it lives on."""
    name = f"e2e-hold-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceRules": [
                    {
                        "apiGroups": ["vmrole.dev"],
                        "apiVersions": ["*"],
                        "operations": ["DELETE"],
                        "resources": ["vmroles"],
                    }
                ],
            },
            "validations": [{"expression": "false", "message": "held by an e2e test"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    items = {"apiVersion": "v1", "kind": "List", "items": [policy, binding]}
    kubectl("apply", "-f", "-", stdin=json.dumps(items))
    return name


def _release(name: str) -> None:
    kubectl("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
    kubectl("delete", "validatingadmissionpolicy", name, "--ignore-not-found")


def test_a_namespace_being_deleted_stops_the_role_quietly(
    kube: Kube, namespace: str, operator: Operator
) -> None:
    """kopf stops watching a namespace (of a VMROLE_NAMESPACES pattern) once it is being deleted, so
    what still reaches the role there is the operator's own next look: here the retry of a resolver
    pod a quota refused. Cluster-wide, the namespace controller deleting the children has the same
    effect (unit-tested): the operator tries to create them again, and is refused the same way."""
    limit_pods(kube, namespace, 0)
    # A tag no node holds, so it needs a resolver pod (one the nodes hold is pinned from their lists).
    create_role(kube, namespace, role_manifest(image=f"{WEB_IMAGE}:no-such-tag"))
    cond = wait_degraded(kube, namespace, "web", "QuotaExceeded")
    assert cond["message"].startswith("image resolver pod not created: ")
    hold = _hold_role_deletion(namespace)
    try:
        kube.wait_for(lambda: _deletion_refused(namespace), 30, "the deletion hold in force")
        offset = operator.log_size()
        kube.core.delete_namespace(namespace, propagation_policy="Background")
        told = f"namespace {namespace} is being deleted"
        kube.wait_for(lambda: told in operator.log_since(offset), 60, "the operator's next try refused")
        time.sleep(10)  # room for a retry loop to show itself
        log = operator.log_since(offset)
        mine = [e for e in map(_entry, log.splitlines()) if namespace in json.dumps(e)]
        assert "Traceback" not in log
        loud = [e for e in mine if str(e.get("severity", "")).lower() not in ("debug", "info")]
        assert loud == [], loud
        assert sum(told in str(e.get("message")) for e in mine) == 1, mine
        assert get_role(kube, namespace, "web")["metadata"].get("deletionTimestamp") is None
    finally:
        _release(hold)


def _entry(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except ValueError:
        return {"message": line, "severity": "unparsed"}
    return entry if isinstance(entry, dict) else {"message": line, "severity": "unparsed"}


def _deletion_refused(namespace: str) -> bool:
    """The policy is in force once the API server has loaded it: a server-side dry run says so."""
    result = subprocess.run(
        ["kubectl", "delete", "vmrole", "web", "-n", namespace, "--dry-run=server"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.returncode != 0 and "held by an e2e test" in result.stderr
