from __future__ import annotations

from tests.support.pods import make_pod
from vmrole_operator.state.observed import Observed, pack, trim_child, trim_pod


def test_trim_pod_keeps_what_state_and_requests_read_and_drops_managed_fields() -> None:
    pod = make_pod(ready=(True, 5))
    pod["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    pod["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    trimmed = trim_pod(pod)
    assert "managedFields" not in trimmed["metadata"]
    assert trimmed["metadata"]["uid"] == pod["metadata"]["uid"]
    assert trimmed["status"] == pod["status"]
    assert trimmed["spec"]["nodeName"] == pod["spec"].get("nodeName")
    names = [x["name"] for x in pod["spec"]["containers"]]
    assert [x["name"] for x in trimmed["spec"]["containers"]] == names
    assert all(set(x) == {"name", "image"} for x in trimmed["spec"]["containers"])
    assert "volumes" not in trimmed["spec"]


def test_trim_child_keeps_spec_and_a_deployments_status_only() -> None:
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "web", "managedFields": [{}], "labels": {"a": "b"}},
        "spec": {"replicas": 3},
        "status": {"readyReplicas": 2},
    }
    service = {**deployment, "kind": "Service", "status": {"loadBalancer": {}}}
    assert trim_child(deployment) == {
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"replicas": 3},
        "status": {"readyReplicas": 2},
    }
    assert "status" not in trim_child(service)
    assert trim_child(service)["spec"] == {"replicas": 3}


def test_observed_finds_children_by_kind_and_name_and_resolvers_by_name() -> None:
    observed = Observed.of(
        pods=[],
        resolvers=[pack({"metadata": {"name": "web-resolve-abc"}})],
        children=[
            pack({"kind": "Deployment", "metadata": {"name": "web"}}),
            pack({"kind": "Service", "metadata": {"name": "web"}}),
        ],
    )
    assert observed.child("Service", "web") == {"kind": "Service", "metadata": {"name": "web"}}
    assert observed.child("ConfigMap", "web") is None
    assert observed.resolver("web-resolve-abc") is not None
    assert observed.resolver("web-resolve-xyz") is None


def test_packed_entries_decode_to_equal_independent_dicts() -> None:
    pod = trim_pod(make_pod(ready=(True, 5)))
    packed = pack(pod)
    first = Observed.of(pods=[packed], resolvers=[], children=[])
    second = Observed.of(pods=[packed], resolvers=[], children=[])
    assert first.pods == [pod]
    first.pods[0]["metadata"]["labels"]["changed"] = "yes"
    assert "changed" not in second.pods[0]["metadata"]["labels"]
