"""Cluster DNS (CoreDNS, on both test clusters): a role's peers find each other by name."""

from __future__ import annotations

import re

import pytest

from .conftest import kubectl
from .kube import Kube
from .roles import create_role, instances, role_manifest, wait_available

pytestmark = pytest.mark.usefixtures("operator")


def _addresses(answer: str) -> set[str]:
    """The A records in busybox nslookup's answer (the server's own address carries a port)."""
    _, _, records = answer.partition("Name:")
    return set(re.findall(r"Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)\s*$", records, re.MULTILINE))


def test_internal_name_resolves_to_the_instances_ips(kube: Kube, namespace: str) -> None:
    create_role(kube, namespace, role_manifest(instances=2))
    wait_available(kube, namespace, "web", ready=2)
    pods = instances(kube, namespace, "web")
    ips = {p["status"]["podIP"] for p in pods}
    resolver = pods[0]["metadata"]["name"]

    def answer() -> str | None:
        out = kubectl("exec", "-n", namespace, resolver, "--", "nslookup", "web-internal", check=False)
        return out if _addresses(out) == ips else None

    # The short name, through the pod's search path, as a peer would ask for it.
    out = kube.wait_for(answer, 30, f"web-internal resolving to {sorted(ips)}", interval=1)
    assert f"web-internal.{namespace}.svc.cluster.local" in out
    # The kubelet has a cluster DNS to give pods (it warns MissingClusterDNS on every pod without one).
    reasons = {e.reason for e in kube.core.list_namespaced_event(namespace).items}
    assert "MissingClusterDNS" not in reasons
