"""Service `<name>` (the load-balanced input endpoints) and `<name>-internal` (per-instance peers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import constants as c
from ..models import Endpoint, VMRole
from .labels import every_instance_selector, role_labels, rotation_selector


def internal_service_name(role: VMRole) -> str:
    return f"{role.name}{c.INTERNAL_SERVICE_SUFFIX}"


def _service_ports(endpoints: Sequence[Endpoint]) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "port": e.port, "targetPort": e.effective_target_port, "protocol": e.protocol}
        for e in endpoints
    ]


def build_input_service(role: VMRole) -> dict[str, Any] | None:
    """Service `<name>`: the role's VIP over the instances in rotation."""
    endpoints = role.spec.endpoints
    if not endpoints.input:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": role.name, "labels": role_labels(role)},
        "spec": {
            "type": endpoints.serviceType,
            "selector": rotation_selector(role),
            "ports": _service_ports(endpoints.input),
        },
    }


def build_internal_service(role: VMRole) -> dict[str, Any] | None:
    """Headless Service `<name>-internal`: one DNS record per instance IP, for the role's peers."""
    endpoints = role.spec.endpoints
    if not endpoints.internal:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": internal_service_name(role), "labels": role_labels(role)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            # Internal endpoints are per-instance addresses, not the load balancer: like Azure's
            # RoleEnvironment, peers see every instance, including starting and busy ones.
            "publishNotReadyAddresses": True,
            "selector": every_instance_selector(role),
            "ports": _service_ports(endpoints.internal),
        },
    }
