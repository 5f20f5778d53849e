"""The benchmark's VMRole and its plain equivalent (Deployment + Service), built from the same pod spec.

The floor's pod template comes from the operator's own builder, so image, command, security context,
ephemeral disk, ports and readiness probes (the auto-start checks) are identical; the preStop drain
hook (with the grace period it adds) and the labels are what a plain Deployment lacks.
"""

from __future__ import annotations

import copy
from typing import Any

from vmrole_operator.models import parse_role
from vmrole_operator.specs.deployment import build_deployment
from vmrole_operator.specs.services import build_input_service

from .common import GROUP, VERSION, WEB_IMAGE

FLOOR_LABEL = "vmrole-bench/floor"
# The floor's Service also selects this, so a plain label flip takes a floor pod out of rotation the
# way the operator's busy does (the Deployment does not select on it).
FLOOR_SERVING_LABEL = "vmrole-bench/serving"
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}


def role_manifest(
    name: str, instances: int = 3, image: str = f"{WEB_IMAGE}:1", **spec: Any
) -> dict[str, Any]:
    """A role serving HTTP on 8080 behind Service `<name>`:80, in rotation once /healthz answers."""
    base: dict[str, Any] = {
        "image": image,
        "instances": instances,
        "autoStart": [
            {"name": "http", "tcpSocket": {"port": 8080}},
            {"name": "health", "httpGet": {"port": 8080, "path": "/healthz"}},
        ],
        "endpoints": {"input": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    base.update(copy.deepcopy(spec))
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VMRole", "metadata": {"name": name}, "spec": base}


def kwok_role_manifest(name: str, image: str, node_selector: dict[str, str]) -> dict[str, Any]:
    """A role of 1 instance for fake (kwok) nodes: no auto-start checks (no network), a digest image."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VMRole",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "instances": 1,
            "autoStart": [],
            "nodeSelector": dict(node_selector),
            "tolerations": [dict(KWOK_TOLERATION)],
        },
    }


def floor_objects(role: dict[str, Any], name: str, image: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plain Deployment and Service equivalent to `role`, named `name`, running `image`."""
    parsed = parse_role({**role, "metadata": {"name": name}})
    deployment = build_deployment(parsed, image, parsed.spec.instances)
    service = build_input_service(parsed)
    assert service is not None, "the benchmark role has an input endpoint"
    labels = {FLOOR_LABEL: name}
    deployment["metadata"] = {"name": name, "labels": dict(labels)}
    deployment["spec"]["selector"] = {"matchLabels": dict(labels)}
    template = deployment["spec"]["template"]
    template["metadata"] = {"labels": {**labels, FLOOR_SERVING_LABEL: "true"}}
    for container in template["spec"]["containers"]:
        # The plain baseline has no drain: no preStop hook (the operator's instances sleep in one).
        container.pop("lifecycle", None)
    template["spec"]["terminationGracePeriodSeconds"] = 30
    service["metadata"] = {"name": name, "labels": dict(labels)}
    service["spec"]["selector"] = {**labels, FLOOR_SERVING_LABEL: "true"}
    return deployment, service


def floor_selector(name: str) -> str:
    return f"{FLOOR_LABEL}={name}"


def role_selector(name: str) -> str:
    return f"vmrole.dev/role={name}"
