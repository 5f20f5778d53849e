"""Fixtures for tests against a real cluster (the one in $KUBECONFIG; `make test` sets it up)."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.support.operator_process import OperatorProcess

from .incluster import InClusterOperator
from .kube import Kube

REPO = Path(__file__).resolve().parents[2]
# Every namespace of one test session starts with this, and the session's operator watches only
# those, so two sessions on one cluster (a developer's and CI's, say) never act on each other's roles.
# OPERATOR=incluster: the deployed operator (`make deploy-e2e`) watches `e2e-ic-*`, and a hex prefix
# never starts with "ic", so local-operator sessions on the same cluster stay apart from it too.
INCLUSTER = os.environ.get("OPERATOR", "local") == "incluster"
SESSION_PREFIX = f"e2e-{'ic-' if INCLUSTER else ''}{uuid.uuid4().hex[:4]}-"
# Which operator's admission webhook is sent the pods of a namespace: this session's own process,
# or the deployed operator (`make deploy-e2e`, hack/deploy.py), which serves every in-cluster session.
E2E_OPERATOR_LABEL = "vmrole.dev/e2e-operator"
E2E_OPERATOR = "incluster" if INCLUSTER else SESSION_PREFIX.rstrip("-")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(420))


@pytest.fixture(scope="session")
def kube() -> Kube:
    if not os.environ.get("KUBECONFIG"):
        pytest.fail(
            "e2e tests need a cluster: run them with `make test` (or set KUBECONFIG and CLUSTER=external)"
        )
    config.load_kube_config()
    return Kube(client.ApiClient())


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace, served by this session's operator."""
    name = create_namespace(kube, SESSION_PREFIX, **{E2E_OPERATOR_LABEL: E2E_OPERATOR})
    yield name
    try:
        kube.core.delete_namespace(name, propagation_policy="Background")
    except ApiException as e:
        if e.status not in (404, 409):  # a test deleted it already (409: still being emptied)
            raise


def create_namespace(kube: Kube, prefix: str, **labels: str) -> str:
    """A namespace named `prefix` plus a random suffix that enforces the `restricted` Pod Security
    Standard, like production ones, with its default ServiceAccount (pods and dry runs need it).
    `labels`: E2E_OPERATOR_LABEL says whose webhook names its pods."""
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "vmrole.dev/e2e": "true",
                    **labels,
                },
            )
        )
    )
    kube.wait_for(lambda: kube.service_account_exists(name, "default"), 60, "default ServiceAccount")
    return name


def kubectl(*args: str, check: bool = True, timeout: float = 60, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=timeout, input=stdin, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@pytest.fixture(scope="session")
def crd(kube: Kube) -> None:
    """The CRD exactly as committed in crds/ (the drift check ties it to the models)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))

    def established() -> bool:
        # Not `kubectl wait`: it fails outright on a CRD so new that it has no conditions yet.
        out = kubectl(
            "get",
            "crd",
            "vmroles.vmrole.dev",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
        )
        return out == "True"

    kube.wait_for(established, 60, "the VMRole CRD established")


@pytest.fixture(scope="session")
def operator(crd: None, kube: Kube) -> Iterator[OperatorProcess | InClusterOperator]:
    mode = os.environ.get("OPERATOR", "local")
    if mode == "incluster":
        yield from _incluster_operator(kube)
        return
    if mode != "local":
        pytest.fail(f"OPERATOR={mode}: use OPERATOR=local (a local process) or OPERATOR=incluster")
    process = OperatorProcess(
        REPO / ".cluster" / "logs" / f"operator-{SESSION_PREFIX}log",
        namespaces=f"{SESSION_PREFIX}*",
        webhook=(f"vmrole-operator-{E2E_OPERATOR}", f"{E2E_OPERATOR_LABEL}={E2E_OPERATOR}"),
    )
    process.start()
    yield process
    process.stop()
    kubectl("delete", "mutatingwebhookconfiguration", f"vmrole-operator-{E2E_OPERATOR}", "--ignore-not-found")


def _incluster_operator(kube: Kube) -> Iterator[InClusterOperator]:
    """The operator `make deploy-e2e` (or you) deployed; checked, never started from here."""
    deployed = InClusterOperator(kube, REPO / ".cluster" / "logs" / f"operator-{SESSION_PREFIX}log")
    try:
        deployed.attach()
    except RuntimeError as e:
        pytest.fail(str(e))
    watched = deployed.watched_namespaces()
    if watched and not any(fnmatch.fnmatchcase(f"{SESSION_PREFIX}x", p) for p in watched.split(",")):
        pytest.fail(f"the deployed operator watches {watched!r}, not this session's {SESSION_PREFIX}*")
    yield deployed
    deployed.detach()
    # Every request the operator made during the session was allowed by manifests/rbac.yaml.
    refused = deployed.refused_requests()
    assert not refused, "the operator was refused API requests:\n" + "\n".join(refused[:20])


def schedulable_nodes(kube: Kube) -> list[str]:
    """Ready nodes that take ordinary pods (no NoSchedule or NoExecute taint, not cordoned)."""
    names = []
    for node in kube.core.list_node().items:
        tainted = any(t.effect in ("NoSchedule", "NoExecute") for t in node.spec.taints or [])
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        if ready and not tainted and not node.spec.unschedulable:
            names.append(node.metadata.name)
    return sorted(names)


@pytest.fixture
def workers(kube: Kube) -> list[str]:
    names = schedulable_nodes(kube)
    if len(names) < 2:
        pytest.skip(f"needs two schedulable nodes and the cluster has {len(names)}: `CLUSTER=kind make test`")
    return names
