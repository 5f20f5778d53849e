"""The operator installed the way users install it (image + manifests/), checked from outside.

OPERATOR=incluster only (`make test-incluster`, the smoke run `make test` ends with): it needs the
Deployment that `make deploy-e2e` applies. The whole session's operator log is also scanned for
refused requests when the session ends (conftest.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from .conftest import INCLUSTER, kubectl
from .incluster import NAME, NAMESPACE, SERVICE_ACCOUNT, InClusterOperator
from .kube import Kube
from .roles import create_role, get_role, instances, observed_after, patch_role, role_manifest, wait_available
from .traffic import audited_pod_deletes

pytestmark = [
    pytest.mark.skipif(not INCLUSTER, reason="needs the deployed operator: OPERATOR=incluster"),
    pytest.mark.usefixtures("operator"),
]


def test_operator_pod_is_admitted_under_restricted_and_runs_non_root_read_only(
    kube: Kube, namespace: str, operator: InClusterOperator
) -> None:
    labels = kube.core.read_namespace(NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = operator.deployment()
    assert deployment.spec.replicas == 1
    assert deployment.spec.strategy.type == "Recreate"
    container = deployment.spec.template.spec.containers[0]
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.resources.requests
    assert container.resources.limits

    # The namespace admitted the running pod; re-asserting the level reports no violation either.
    relabel = kubectl(
        "label", "--dry-run=server", "--overwrite", "namespace", NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted", "-o", "name",
    )  # fmt: skip
    assert relabel.strip() == f"namespace/{NAMESPACE}"
    # The same pod spec, created (dry run) in another namespace enforcing restricted, is admitted.
    spec = kube.api.sanitize_for_serialization(deployment.spec.template)["spec"]
    spec.pop("serviceAccountName")  # that namespace has only its default ServiceAccount
    spec.pop("serviceAccount", None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "admission-check"}, "spec": spec}
    kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(pod))

    # Inside the container: uid 65532, a read-only root, and no shell to fall back on.
    probe = (
        "import os\n"
        "ro = bool(os.statvfs('/').f_flag & os.ST_RDONLY)\n"
        "print(os.getuid(), os.getgid(), ro, os.path.exists('/bin/sh'), os.path.exists('/bin/bash'))\n"
    )
    pod_name = operator.ready_pod().metadata.name
    out = kubectl("exec", "-n", NAMESPACE, pod_name, "--", "/usr/bin/python3", "-c", probe)
    assert out.split() == ["65532", "65532", "True", "False", "False"]


ALLOWED = [
    ("patch", "vmroles.vmrole.dev/status", "-A"),
    ("create", "deployments.apps", "-A"),
    ("delete", "pods", "-A"),
    ("list", "endpointslices.discovery.k8s.io", "-A"),
    ("create", "events", "-A"),
    ("watch", "nodes", ""),
    ("create", "poddisruptionbudgets.policy", "-A"),
]
DENIED = [
    ("get", "secrets", "-A"),
    ("list", "secrets", "-A"),
    ("watch", "secrets", "-A"),
    ("get", "secrets", f"--namespace={NAMESPACE}"),
    ("delete", "nodes", ""),
    ("patch", "nodes", ""),
    ("delete", "poddisruptionbudgets.policy", "-A"),
    ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("patch", "clusterrolebindings.rbac.authorization.k8s.io", ""),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", ""),
    ("bind", "clusterroles.rbac.authorization.k8s.io", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", "-A"),
    ("delete", "deployments.apps", "-A"),
    ("delete", "vmroles.vmrole.dev", "-A"),
    ("patch", "pods", "-A --subresource=status"),  # the kubelet alone decides whether an instance is Ready
    ("create", "pods", "-A --subresource=exec"),
    ("create", "pods", "-A --subresource=eviction"),
    ("delete", "namespaces", ""),
    ("*", "*", "-A"),
]


def can_i(verb: str, resource: str, scope: str) -> str:
    args = ["auth", "can-i", verb, resource, f"--as={SERVICE_ACCOUNT}", *scope.split()]
    return kubectl(*args, check=False).strip()


@pytest.mark.parametrize(("verb", "resource", "scope"), DENIED)
def test_service_account_is_denied(verb: str, resource: str, scope: str) -> None:
    assert can_i(verb, resource, scope) == "no"


@pytest.mark.parametrize(("verb", "resource", "scope"), ALLOWED)
def test_service_account_is_allowed(verb: str, resource: str, scope: str) -> None:
    assert can_i(verb, resource, scope) == "yes"


def test_cluster_role_names_every_verb_and_resource(kube: Kube) -> None:
    rbac = client.RbacAuthorizationV1Api(kube.api)
    role = kube.api.sanitize_for_serialization(rbac.read_cluster_role(NAME))
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert "nonResourceURLs" not in rule, rule


def _metrics(kube: Kube) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape of the operator through its metrics Service (via the API server's proxy)."""
    path = f"/api/v1/namespaces/{NAMESPACE}/services/{NAME}-metrics:http-metrics/proxy/metrics"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(kubectl("get", "--raw", path))
        for s in family.samples
    }


def test_a_role_through_its_whole_life_without_a_refused_request(
    kube: Kube, namespace: str, operator: InClusterOperator
) -> None:
    offset = operator.log_size()
    # Setup writes down the name it finds: only the webhook, through the operator's Service, can have
    # given it that early.
    saw = ["/bin/sh", "-c", "cat /etc/vmrole/role/instance-id > /scratch/setup-saw-name"]
    create_role(kube, namespace, role_manifest(instances=2, setup={"command": saw}))
    wait_available(kube, namespace, "web", ready=2)
    patch_role(kube, namespace, "web", {"spec": {"instances": 3}})
    wait_available(kube, namespace, "web", ready=3)
    for pod in instances(kube, namespace, "web"):
        name = pod["metadata"]["name"]
        seen = kubectl("exec", "-n", namespace, name, "--", "cat", "/scratch/setup-saw-name")
        assert seen == pod["metadata"]["annotations"]["vmrole.dev/instance-name"], name
    assert sorted(
        p["metadata"]["annotations"]["vmrole.dev/instance-name"] for p in instances(kube, namespace, "web")
    ) == [
        "web_IN_0",
        "web_IN_1",
        "web_IN_2",
    ]
    kube.core.delete_namespaced_service("web", namespace)
    kube.wait_for(lambda: kube.core.read_namespaced_service("web", namespace), 60, "the Service restored")
    victim = instances(kube, namespace, "web")[0]
    kubectl("annotate", "pod", "-n", namespace, victim["metadata"]["name"], "vmrole.dev/reimage=incluster")

    def replaced() -> bool:
        uids = {p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
        return victim["metadata"]["uid"] not in uids and len(uids) == 3

    kube.wait_for(replaced, 120, "the reimaged instance replaced")
    wait_available(kube, namespace, "web", ready=3)

    # /metrics through the metrics Service: what this role did is counted, and only once it happened.
    samples = _metrics(kube)
    assert samples[("vmrole_actions_total", (("action", "reimage"), ("result", "succeeded")))] >= 1
    role_labels = (("namespace", namespace), ("result", "succeeded"), ("role", "web"))
    assert samples[("vmrole_reconciles_total", role_labels)] >= 1
    assert samples[("vmrole_reconcile_duration_seconds_count", (("result", "succeeded"),))] >= 1
    ready = ("vmrole_instances", (("namespace", namespace), ("role", "web"), ("state", "ReadyRole")))
    kube.wait_for(lambda: _metrics(kube).get(ready) == 3, 30, "3 ReadyRole instances in the metrics")

    kube.custom.delete_namespaced_custom_object("vmrole.dev", "v1alpha1", namespace, "vmroles", "web")
    kube.wait_for(lambda: not kube.pods(namespace, "vmrole.dev/role=web"), 120, "the instances gone")
    assert operator.refused_requests(offset) == []


@contextmanager
def pod_uids_seen(kube: Kube, namespace: str, selector: str) -> Iterator[set[str]]:
    """Every pod UID that exists at any moment while the block runs (a watch, resumed on expiry)."""
    seen: set[str] = set()
    stop = threading.Event()

    def run() -> None:
        version = None
        while not stop.is_set():
            try:
                if version is None:
                    listing = kube.core.list_namespaced_pod(namespace, label_selector=selector)
                    seen.update(p.metadata.uid for p in listing.items)
                    version = listing.metadata.resource_version
                for event in watch.Watch().stream(
                    kube.core.list_namespaced_pod,
                    namespace,
                    label_selector=selector,
                    resource_version=version,
                    timeout_seconds=5,
                ):
                    seen.add(event["object"].metadata.uid)
                    version = event["object"].metadata.resource_version
            except client.ApiException as e:
                if e.status != 410:
                    raise
                version = None  # expired: list again

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.5)
    try:
        yield seen
    finally:
        stop.set()
        thread.join(15)


def _last_reimage(kube: Kube, namespace: str) -> dict[str, Any]:
    return dict((get_role(kube, namespace, "web").get("status") or {}).get("lastReimage") or {})


def test_killing_the_operator_pod_during_reimage_all_replaces_every_instance_once(
    kube: Kube, namespace: str, operator: InClusterOperator
) -> None:
    # START_DELAY makes each new instance take a few seconds to pass auto-start, so the round lasts
    # long enough to be interrupted half way.
    create_role(
        kube,
        namespace,
        role_manifest(
            instances=3, env=[{"name": "START_DELAY", "value": "4"}], upgrade={"maxUnavailable": 1}
        ),
    )
    wait_available(kube, namespace, "web", ready=3, timeout=180)
    originals = {p["metadata"]["uid"]: p["metadata"]["name"] for p in instances(kube, namespace, "web")}
    offset = operator.log_size()

    with pod_uids_seen(kube, namespace, "vmrole.dev/role=web") as seen:
        kubectl("annotate", "vmrole", "web", "-n", namespace, "vmrole.dev/reimage=incluster-kill")

        def half_way() -> bool:
            current = {p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
            return bool(set(originals) - current) and bool(set(originals) & current)

        kube.wait_for(half_way, 120, "the round half way: some instances replaced, some not", interval=0.1)
        assert not _last_reimage(kube, namespace).get("completedAt"), "the round ended before the kill"
        operator.wait_replaced(operator.kill_pod(grace_seconds=0))

        def completed() -> dict[str, Any] | None:
            last = _last_reimage(kube, namespace)
            return last if last.get("token") == "incluster-kill" and last.get("completedAt") else None

        last = kube.wait_for(completed, 240, "the round recorded complete after the restart")
        wait_available(kube, namespace, "web", ready=3, timeout=120)
        observed_after(kube, namespace, "web")  # the restarted operator has handled all of it

    current = {p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
    assert not current & set(originals), "an instance was never replaced"
    # Exactly one new instance per original: none replaced twice, none made and thrown away.
    assert seen - set(originals) == current, (sorted(seen), sorted(originals), sorted(current))
    assert _last_reimage(kube, namespace) == last
    deletes = audited_pod_deletes(namespace)
    instance_deletes = {n: count for n, count in deletes.items() if "-resolve-" not in n}
    assert instance_deletes == dict.fromkeys(originals.values(), 1), deletes
    assert operator.refused_requests(offset) == []
