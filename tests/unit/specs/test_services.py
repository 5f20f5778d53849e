"""Service `<name>` and `<name>-internal`, and what each child selects."""

from __future__ import annotations

from tests.support.role_bodies import example_body, minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.deployment import build_deployment
from vmrole_operator.specs.network_policy import build_network_policy
from vmrole_operator.specs.services import build_input_service, build_internal_service

from .roles import PINNED, example_role


def test_input_service() -> None:
    svc = build_input_service(example_role())
    assert svc is not None
    assert (svc["apiVersion"], svc["kind"], svc["metadata"]["name"]) == ("v1", "Service", "web")
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {c.ROLE_LABEL: "web", c.IN_ROTATION_LABEL: "true"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }


def test_input_service_type_and_default_target() -> None:
    role = parse_role(
        minimal_body(
            endpoints={"input": [{"name": "dns", "port": 53, "protocol": "UDP"}], "serviceType": "NodePort"}
        )
    )
    svc = build_input_service(role)
    assert svc is not None
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [{"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}]


def test_internal_service_is_headless() -> None:
    svc = build_internal_service(example_role())
    assert svc is not None
    assert svc["metadata"]["name"] == "web-internal"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {c.ROLE_LABEL: "web"}
    assert svc["spec"]["ports"] == [{"name": "peer", "port": 7000, "targetPort": 7000, "protocol": "TCP"}]


def test_no_services_without_endpoints() -> None:
    role = parse_role(minimal_body())
    assert build_input_service(role) is None
    assert build_internal_service(role) is None
    assert build_network_policy(role) is None


def test_what_each_child_selects() -> None:
    role = parse_role(example_body())
    dep = build_deployment(role, PINNED, 2)
    service = build_input_service(role)
    internal = build_internal_service(role)
    assert service is not None
    assert internal is not None
    pool = set(dep["spec"]["selector"]["matchLabels"].items())
    template = set(dep["spec"]["template"]["metadata"]["labels"].items())
    # A reimage victim leaves the pool (the ReplicaSet replaces it) but keeps serving until drained:
    # the input Service does not select on the pool label.
    assert (c.IN_POOL_LABEL, "true") not in set(service["spec"]["selector"].items())
    # It selects what every new instance carries, so a pod needs no operator to enter rotation ...
    assert set(service["spec"]["selector"].items()) <= template
    # ... and the operator takes one out by changing a label the Deployment does not select on.
    assert (c.IN_ROTATION_LABEL, "true") not in pool
    # Peers see every instance, in rotation or not.
    assert internal["spec"]["selector"] == {c.ROLE_LABEL: "web"}
