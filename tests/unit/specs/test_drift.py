"""The drift check: subset semantics, zero values, quantities by value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.role_bodies import example_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.deployment import build_deployment
from vmrole_operator.specs.drift import child_differs

from .roles import PINNED, example_role


def as_returned_by_the_api(desired: dict[str, Any]) -> dict[str, Any]:
    """`desired` after a round trip through the API server: defaults, metadata, canonical quantities."""
    actual = copy.deepcopy(desired)
    meta = actual["metadata"]
    meta.update(uid="1b2c", resourceVersion="4711", generation=1, creationTimestamp="2026-11-22T10:00:00Z")
    meta["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    spec = actual["spec"]
    spec.update(progressDeadlineSeconds=600, revisionHistoryLimit=10)
    if spec["paused"] is False:
        del spec["paused"]  # omitempty
    pod = spec["template"]["spec"]
    pod.update(dnsPolicy="ClusterFirst", restartPolicy="Always", schedulerName="default-scheduler")
    spec["template"]["metadata"]["creationTimestamp"] = None
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        container.update(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
        if container.get("args") == []:
            del container["args"]  # omitempty
        if "readinessProbe" in container:
            container["readinessProbe"]["successThreshold"] = 1
            if "httpGet" in container["readinessProbe"]:
                container["readinessProbe"]["httpGet"].setdefault("scheme", "HTTP")
    for volume in pod.get("volumes", []):
        if "emptyDir" in volume and volume["emptyDir"]["sizeLimit"] == "1024Mi":
            volume["emptyDir"]["sizeLimit"] = "1Gi"  # canonical form
        for source in ("configMap", "secret"):
            if source in volume:
                volume[source]["defaultMode"] = 420
    actual["status"] = {"replicas": 3, "observedGeneration": 1}
    return actual


def test_no_drift_after_an_api_round_trip() -> None:
    body = example_body()
    body["spec"]["ephemeralDisk"]["sizeLimit"] = "1024Mi"
    desired = build_deployment(parse_role(body), PINNED, 3)
    actual = as_returned_by_the_api(desired)
    assert actual != desired
    assert not child_differs(desired, actual)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["spec"].update(replicas=5),
        lambda d: d["spec"].update(paused=True),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="busybox"),
        lambda d: d["spec"]["template"]["metadata"]["labels"].pop(c.IN_ROTATION_LABEL),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"}),
        lambda d: d["spec"]["template"]["spec"]["volumes"][0]["emptyDir"].update(sizeLimit="2Gi"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].update(periodSeconds=10),
        lambda d: d["metadata"]["labels"].pop(c.ROLE_LABEL),
        lambda d: d["spec"]["template"]["spec"].update(enableServiceLinks=True),
    ],
    ids=[
        "replicas",
        "paused",
        "image",
        "rotation-label-removed",
        "writable-root",
        "env-added",
        "disk-size",
        "probe-period",
        "label-removed",
        "service-links",
    ],
)
def test_hand_edits_are_drift(edit: Any) -> None:
    desired = build_deployment(example_role(), PINNED, 3)
    actual = as_returned_by_the_api(desired)
    edit(actual)
    assert child_differs(desired, actual)


def test_subset_semantics() -> None:
    desired = {"a": 1, "b": {"c": [1, {"d": "x"}]}}
    assert not child_differs(desired, {"a": 1, "b": {"c": [1, {"d": "x", "e": "server"}], "f": 2}, "g": 3})
    assert child_differs(desired, {"a": 2, "b": {"c": [1, {"d": "x"}]}})
    assert child_differs(desired, {"b": {"c": [1, {"d": "x"}]}})  # missing non-empty key
    assert child_differs(desired, {"a": 1, "b": {"c": [1]}})  # shorter list
    assert child_differs(desired, {"a": 1, "b": {"c": [1, {"d": "x"}, 3]}})  # longer list
    assert child_differs(desired, {"a": 1, "b": {"c": [{"d": "x"}, 1]}})  # order matters
    assert child_differs(desired, {"a": 1, "b": "scalar"})
    assert child_differs({"a": True}, {"a": 1})  # True is not 1
    assert child_differs({"a": 1}, {"a": True})


def test_zero_values_match_absent_keys() -> None:
    empties: list[Any] = [False, 0, "", [], {}, None]
    for empty in empties:
        assert not child_differs({"a": empty}, {})
    assert child_differs({"a": False}, {"a": True})


def test_quantities_compare_by_value_only_where_they_are_quantities() -> None:
    assert not child_differs(
        {"resources": {"limits": {"memory": "1024Mi"}}}, {"resources": {"limits": {"memory": "1Gi"}}}
    )
    assert not child_differs(
        {"resources": {"requests": {"cpu": "0.5"}}}, {"resources": {"requests": {"cpu": "500m"}}}
    )
    assert not child_differs({"emptyDir": {"sizeLimit": "1e3"}}, {"emptyDir": {"sizeLimit": "1k"}})
    assert child_differs({"emptyDir": {"sizeLimit": "1Gi"}}, {"emptyDir": {"sizeLimit": "2Gi"}})
    # An env value that merely looks like a quantity is compared as text.
    assert child_differs(
        {"env": [{"name": "A", "value": "1024Mi"}]}, {"env": [{"name": "A", "value": "1Gi"}]}
    )
