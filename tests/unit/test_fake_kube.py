"""The fake API keeps the API server's rules the operator's exactly-once behaviour relies on."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from tests.support.fake_kube import Crash, FakeKube, matches, merge_patch, strategic_merge_patch
from vmrole_operator.kube.api import APPLY_PATCH, DEPLOYMENTS, MERGE_PATCH, PODS, SERVICES


def pod(name: str = "p", **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": dict(labels)},
        "spec": {"containers": [{"name": "role", "image": "a"}, {"name": "check-x", "image": "p"}]},
        "status": {"phase": "Running"},
    }


def test_404_and_409_on_create() -> None:
    kube = FakeKube()
    with pytest.raises(ApiException) as missing:
        kube.get(PODS, "ns", "p")
    assert missing.value.status == 404
    kube.create(PODS, "ns", pod())
    with pytest.raises(ApiException) as exists:
        kube.create(PODS, "ns", pod())
    assert exists.value.status == 409
    assert kube.count("create", "pods") == 1


def test_uid_preconditions_protect_a_newer_incarnation() -> None:
    kube = FakeKube()
    old = kube.create(PODS, "ns", pod())
    kube.delete(PODS, "ns", "p", old["metadata"]["uid"])
    new = kube.create(PODS, "ns", pod())
    for call in (
        lambda: kube.delete(PODS, "ns", "p", old["metadata"]["uid"]),
        lambda: kube.patch(
            PODS, "ns", "p", {"metadata": {"uid": old["metadata"]["uid"], "labels": {"a": "b"}}}
        ),
    ):
        with pytest.raises(ApiException) as conflict:
            call()
        assert conflict.value.status == 409
    assert kube.get(PODS, "ns", "p")["metadata"]["uid"] == new["metadata"]["uid"]


def test_no_op_patches_write_nothing_and_generation_follows_spec() -> None:
    kube = FakeKube()
    created = kube.create(DEPLOYMENTS, "ns", {"metadata": {"name": "d"}, "spec": {"replicas": 1}})
    same = kube.patch(DEPLOYMENTS, "ns", "d", {"spec": {"replicas": 1}}, content_type=MERGE_PATCH)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert kube.count("patch", "deployments") == 0
    labelled = kube.patch(
        DEPLOYMENTS, "ns", "d", {"metadata": {"labels": {"x": "1"}}}, content_type=MERGE_PATCH
    )
    assert labelled["metadata"]["generation"] == 1
    scaled = kube.patch(DEPLOYMENTS, "ns", "d", {"spec": {"replicas": 2}}, content_type=MERGE_PATCH)
    assert scaled["metadata"]["generation"] == 2
    assert scaled["metadata"]["resourceVersion"] != labelled["metadata"]["resourceVersion"]


def test_status_subresource_is_separate() -> None:
    kube = FakeKube()
    kube.put(PODS, pod())
    kube.patch(PODS, "ns", "p", {"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "1"}}})
    assert kube.get(PODS, "ns", "p")["status"]["phase"] == "Running"
    kube.patch(
        PODS,
        "ns",
        "p",
        {"status": {"phase": "Failed"}, "metadata": {"labels": {"b": "1"}}},
        subresource="status",
    )
    stored = kube.get(PODS, "ns", "p")
    assert stored["status"]["phase"] == "Failed"
    assert stored["metadata"]["labels"] == {"a": "1"}


def test_strategic_merge_patches_named_lists_by_name() -> None:
    kube = FakeKube()
    kube.put(PODS, pod())
    kube.patch(PODS, "ns", "p", {"spec": {"containers": [{"name": "role", "image": "b"}]}})
    assert kube.get(PODS, "ns", "p")["spec"]["containers"] == [
        {"name": "role", "image": "b"},
        {"name": "check-x", "image": "p"},
    ]
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert strategic_merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"c": None}}) == {"a": {"b": 1}}


def test_server_side_apply_drops_what_the_manager_no_longer_sets() -> None:
    kube = FakeKube()
    first = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "1", "b": "2"}}}
    kube.patch(SERVICES, "ns", "s", first, content_type=APPLY_PATCH, field_manager="m", force=True)
    kube.patch(SERVICES, "ns", "s", {"metadata": {"labels": {"hand": "edit"}}}, content_type=MERGE_PATCH)
    second = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "1"}}}
    applied = kube.patch(SERVICES, "ns", "s", second, content_type=APPLY_PATCH, field_manager="m", force=True)
    assert applied["metadata"]["labels"] == {"a": "1", "hand": "edit"}  # b dropped, other owners' kept


def test_label_selectors() -> None:
    labels = {"vmrole.dev/role": "web", "in": "true"}
    assert matches(labels, "vmrole.dev/role=web,in=true")
    assert matches(labels, "in")
    assert not matches(labels, "!in")
    assert not matches(labels, "vmrole.dev/role=db")
    with pytest.raises(ValueError, match="unsupported"):
        matches(labels, "in!=true")
    kube = FakeKube()
    kube.put(PODS, pod("a", role="web"))
    kube.put(PODS, pod("b", role="db"))
    assert [p["metadata"]["name"] for p in kube.list(PODS, "ns", "role=web")] == ["a"]


def test_crash_after_a_write_took_effect_and_injected_failures_did_not() -> None:
    kube = FakeKube()
    kube.crash_after(1)
    with pytest.raises(Crash):
        kube.create(PODS, "ns", pod())
    assert kube.stored(PODS, "ns", "p") is not None
    kube.fail_next("patch", "pods", 500)
    with pytest.raises(ApiException) as failed:
        kube.patch(PODS, "ns", "p", {"metadata": {"labels": {"x": "y"}}})
    assert failed.value.status == 500
    assert "x" not in (kube.get(PODS, "ns", "p")["metadata"].get("labels") or {})
