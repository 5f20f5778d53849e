"""NetworkPolicy `<name>`: a role's internal endpoints are for its peers only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import constants as c
from ..models import VMRole
from .labels import every_instance_selector, role_labels


def _policy_ports(ports: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": protocol} for port, protocol in sorted(set(ports))]


def build_network_policy(role: VMRole) -> dict[str, Any] | None:
    """NetworkPolicy `<name>`: internal endpoints only for the role's peers.

    Selecting the pods with an Ingress policy denies every port not listed, so each port the
    instance must serve gets a rule here. The auto-start checks are kubelet probes from the node,
    which network plugins allow regardless of policies.
    """
    endpoints = role.spec.endpoints
    if not endpoints.internal:
        return None
    peers = (
        {c.PEER_GROUP_LABEL: endpoints.peerGroup}
        if endpoints.peerGroup is not None
        else every_instance_selector(role)
    )
    rules: list[dict[str, Any]] = [
        {
            # Internal endpoints: reachable by the service's own components, not by anyone else.
            "from": [{"podSelector": {"matchLabels": peers}}],
            "ports": _policy_ports([(e.effective_target_port, e.protocol) for e in endpoints.internal]),
        }
    ]
    if endpoints.input:
        rules.append(
            {
                # Input endpoints are the public face of the role: open to every source.
                "ports": _policy_ports([(e.effective_target_port, e.protocol) for e in endpoints.input]),
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": role.name, "labels": role_labels(role)},
        "spec": {
            "podSelector": {"matchLabels": every_instance_selector(role)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
