"""Property tests against the real API server (server-side dry runs only; no operator, no pod runs).

1. Every role the API server admits gives children (Deployment, Services, NetworkPolicy, ConfigMaps,
   and the image resolver pod) that the API server admits too: nothing the door let in fails later.
2. `parse_role` and the CRD agree both ways: what the API server admits parses (as sent, and as
   stored with its defaults, to the same spec), and what parses is admitted. Three sources of roles:
   valid ones, near misses of them (one place bent), and rule probes (one rule-carrying object drawn
   from its schema alone, so its CEL rules and their pydantic twins decide).

A run takes about a minute here; a failure takes longer, as Hypothesis shrinks it with more dry runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import kopf
import pytest
from hypothesis import HealthCheck, event, given, settings
from kubernetes.client.rest import ApiException

from vmrole_operator.models import VMRole, parse_role
from vmrole_operator.specs.children import build_children
from vmrole_operator.specs.environment import topology_text
from vmrole_operator.specs.resolver_pod import build_resolver_pod
from vmrole_operator.state.names import instance_name

from .conftest import SESSION_PREFIX, create_namespace
from .kube import Kube
from .roles import GROUP, PLURAL, VERSION
from .spec_strategies import near_misses, rule_probes, valid_roles

pytestmark = pytest.mark.usefixtures("crd")

PINNED = "localhost/vmrole-test/web@sha256:" + "a" * 64
# The database stays off: examples found on one machine are no regression suite for another, and
# nothing is written into the working tree.
PROPERTY = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    """One namespace for every example: dry runs store nothing, so examples cannot collide."""
    name = create_namespace(kube, f"{SESSION_PREFIX}prop-")
    yield name
    kube.core.delete_namespace(name, propagation_policy="Background")


def _admit_role(kube: Kube, namespace: str, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the object the API server would store, "") or (None, its refusal)."""
    try:
        created = kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest, dry_run="All", field_validation="Strict"
        )
    except ApiException as e:
        if e.status in (400, 422):
            return None, f"{e.status}: {json.loads(e.body)['message']}"
        raise
    return dict(created), ""


def _parses(manifest: dict[str, Any]) -> tuple[VMRole | None, str]:
    try:
        return parse_role(manifest), ""
    except ValueError as e:
        return None, str(e)


def _create_child(kube: Kube, namespace: str, child: dict[str, Any]) -> None:
    options = {"dry_run": "All", "field_validation": "Strict"}
    kind = child["kind"]
    if kind == "Deployment":
        kube.apps.create_namespaced_deployment(namespace, child, **options)
    elif kind == "Service":
        kube.core.create_namespaced_service(namespace, child, **options)
    elif kind == "ConfigMap":
        kube.core.create_namespaced_config_map(namespace, child, **options)
    elif kind == "NetworkPolicy":
        kube.networking.create_namespaced_network_policy(namespace, child, **options)
    elif kind == "PodDisruptionBudget":
        kube.policy.create_namespaced_pod_disruption_budget(namespace, child, **options)
    elif kind == "Pod":
        kube.core.create_namespaced_pod(namespace, child, **options)
    else:
        raise AssertionError(f"a child of unexpected kind {kind}")


def _children_are_admitted(kube: Kube, namespace: str, stored: dict[str, Any]) -> None:
    """Build the children exactly as the reconciler does and dry-run each of them."""
    role = parse_role(stored)
    # The instances file as it would be with three named instances up.
    holders = [(instance_name(role.name, n), f"10.88.0.{n + 2}") for n in range(3)]
    children = build_children(
        stored,
        role,
        PINNED,
        role.spec.instances,
        reimage_round="2026-01-01T00:00:00Z",
        topology=topology_text(role, holders),
    )
    resolver = build_resolver_pod(role)
    kopf.adopt(resolver, owner=cast(kopf.Body, stored))
    for child in [*children, resolver]:
        try:
            _create_child(kube, namespace, child)
        except ApiException as e:
            message = json.loads(e.body)["message"] if e.body else e.reason
            pytest.fail(
                f"the API server admitted the role but refused its {child['kind']} ({e.status}): {message}\n"
                f"role spec: {json.dumps(stored['spec'])}"
            )
    event(f"children: {'+'.join(sorted(child['kind'] for child in children))}")


@settings(PROPERTY, max_examples=80)
@given(manifest=valid_roles())
def test_valid_roles_are_admitted_parsed_alike_and_so_are_their_children(
    kube: Kube, ns: str, manifest: dict[str, Any]
) -> None:
    stored, refusal = _agree(kube, ns, manifest)
    # The strategy builds roles by the rules; a refusal means a rule the strategy does not know of.
    assert stored is not None, f"{refusal}\nspec: {json.dumps(manifest['spec'])}"
    _children_are_admitted(kube, ns, stored)


@settings(PROPERTY, max_examples=400)
@given(manifest=near_misses())
def test_parse_role_agrees_with_the_api_server_on_near_misses(
    kube: Kube, ns: str, manifest: dict[str, Any]
) -> None:
    stored, _ = _agree(kube, ns, manifest)
    if stored is not None:
        # A near miss that is still valid is one more admitted role: its children must pass too.
        _children_are_admitted(kube, ns, stored)


@settings(PROPERTY, max_examples=300)
@given(manifest=rule_probes())
def test_parse_role_agrees_with_the_api_server_on_each_rule(
    kube: Kube, ns: str, manifest: dict[str, Any]
) -> None:
    stored, _ = _agree(kube, ns, manifest)
    if stored is not None:
        _children_are_admitted(kube, ns, stored)


def _agree(kube: Kube, namespace: str, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Both verdicts on `manifest`, asserted equal; returns the API server's (stored object, refusal)."""
    stored, refusal = _admit_role(kube, namespace, manifest)
    parsed, error = _parses(manifest)
    event("admitted" if stored is not None else "refused")
    spec = json.dumps(manifest["spec"])
    name = manifest["metadata"]["name"]
    if stored is None:
        assert parsed is None, f"the API server refused what parse_role accepts ({refusal})\n{name}: {spec}"
        return None, refusal
    assert parsed is not None, f"parse_role refused what the API server admits ({error})\n{name}: {spec}"
    # What the operator reads back (defaults filled in by the API server) parses too, to the same role.
    from_api, error = _parses(stored)
    assert from_api is not None, f"parse_role refused the stored role ({error})\n{json.dumps(stored['spec'])}"
    assert from_api.spec == parsed.spec
    return stored, ""
