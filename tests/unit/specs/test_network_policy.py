"""The NetworkPolicy that keeps internal endpoints to the role's peers."""

from __future__ import annotations

from tests.support.role_bodies import minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.network_policy import build_network_policy

from .roles import example_role


def test_network_policy() -> None:
    policy = build_network_policy(example_role())
    assert policy is not None
    assert (policy["apiVersion"], policy["kind"], policy["metadata"]["name"]) == (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "web",
    )
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {c.ROLE_LABEL: "web"}}
    assert spec["policyTypes"] == ["Ingress"]
    # No rule for the auto-start checks: they are kubelet probes from the node.
    internal, public = spec["ingress"]
    assert internal == {
        "from": [{"podSelector": {"matchLabels": {c.ROLE_LABEL: "web"}}}],
        "ports": [{"port": 7000, "protocol": "TCP"}],
    }
    assert public == {"ports": [{"port": 8080, "protocol": "TCP"}]}  # target port, from anywhere


def test_network_policy_peer_group_and_minimal_rules() -> None:
    role = parse_role(
        minimal_body(
            endpoints={"internal": [{"name": "gossip", "port": 7946, "protocol": "UDP"}], "peerGroup": "shop"}
        )
    )
    policy = build_network_policy(role)
    assert policy is not None
    assert policy["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {c.PEER_GROUP_LABEL: "shop"}}}],
            "ports": [{"port": 7946, "protocol": "UDP"}],
        }
    ]
