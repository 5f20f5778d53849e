"""The resolver pod that pins a tag to a digest: its name, its spec, and reading what the kubelet reports."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.support.restricted_pss import restricted_violations
from vmrole_operator import constants as c
from vmrole_operator.models import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, VMRole, parse_role
from vmrole_operator.specs.resolver_pod import build_resolver_pod, resolver_pod_name
from vmrole_operator.state.pinning import Resolution, read_resolver_pod

TAG = "localhost/vmrole-test/web:1"
HEX = "fdf3a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
REPO_DIGEST = f"localhost/vmrole-test/web@sha256:{HEX}"
CONFIG_ID = "sha256:9b1e0c2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"
NAME_54 = "web-" + "x" * 50
# What containerd says when the resolver command does not exist in the image (it never should).
START_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "/.vmrole-resolve-image-only": '
    "stat /.vmrole-resolve-image-only: no such file or directory: unknown"
)


def role(name: str = "web", **spec: Any) -> VMRole:
    return parse_role(
        {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": name, "namespace": "default", "uid": "7a0e5d1c-3b2f-4c4d-9e8f-1a2b3c4d5e6f"},
            "spec": {"image": TAG, **spec},
        }
    )


# --- the name ---


def test_name_is_stable() -> None:
    assert resolver_pod_name("web", TAG) == resolver_pod_name("web", TAG)
    assert resolver_pod_name("web", TAG).startswith("web-resolve-")


def test_name_differs_per_image_and_per_role() -> None:
    names = {
        resolver_pod_name("web", TAG),
        resolver_pod_name("web", "localhost/vmrole-test/web:2"),
        resolver_pod_name("web", REPO_DIGEST),
        resolver_pod_name("api", TAG),
    }
    assert len(names) == 4


def test_name_of_the_longest_role_is_a_valid_pod_name() -> None:
    assert len(NAME_54) == c.MAX_ROLE_NAME_LENGTH
    name = resolver_pod_name(NAME_54, TAG)
    assert re.fullmatch(DNS_SUBDOMAIN_PATTERN, name)
    assert len(name) <= 253


def test_name_of_the_longest_role_is_a_dns_label() -> None:
    name = resolver_pod_name(NAME_54, TAG)
    assert len(name) <= 63
    assert re.fullmatch(DNS_LABEL_PATTERN, name)


# --- the pod ---


def test_restricted_violations_sees_a_root_pod() -> None:
    """The checker itself: a plain pod, as most charts write it, breaks the standard several ways."""
    pod = {
        "spec": {"containers": [{"name": "app", "image": TAG}], "volumes": [{"name": "h", "hostPath": {}}]}
    }
    assert len(restricted_violations(pod)) == 5


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = build_resolver_pod(role(securityContext={"runAsUser": 1000, "runAsGroup": 1000}))
    assert restricted_violations(pod) == []
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000
    assert pod["spec"]["securityContext"]["runAsGroup"] == 1000
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "volumes" not in pod["spec"]


def test_pod_runs_only_the_resolver_command_never_the_image_entrypoint() -> None:
    pod = build_resolver_pod(role(command=["/bin/httpd", "-f"], args=["-p", "8080"]))
    (container,) = pod["spec"]["containers"]
    assert container["name"] == c.RESOLVER_CONTAINER
    assert container["image"] == TAG
    assert container["command"] == [c.RESOLVER_COMMAND]
    assert "args" not in container
    assert "initContainers" not in pod["spec"]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_pod_is_never_selected_as_an_instance() -> None:
    pod = build_resolver_pod(role())
    labels = pod["metadata"]["labels"]
    assert labels[c.RESOLVER_FOR_LABEL] == "web"
    assert c.ROLE_LABEL not in labels
    assert pod["metadata"]["annotations"] == {c.RESOLVES_IMAGE_ANNOTATION: TAG}
    assert pod["metadata"]["name"] == resolver_pod_name("web", TAG)
    assert "readinessGates" not in pod["spec"]


def test_pod_goes_where_instances_go() -> None:
    selector = {"kubernetes.io/os": "linux", "vmrole.dev/pool": "web"}
    role_ = role(nodeSelector=selector)
    pod = build_resolver_pod(role_)
    assert pod["spec"]["nodeSelector"] == selector
    assert pod["spec"]["nodeSelector"] is not role_.spec.nodeSelector  # a copy
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_pod_without_node_selector_has_none() -> None:
    assert "nodeSelector" not in build_resolver_pod(role())["spec"]


# --- reading the pod back ---


def resolver_pod(
    state: dict[str, Any] | None,
    *,
    image: str = TAG,
    image_id: str = "",
    phase: str = "Pending",
    annotated: bool = True,
) -> dict[str, Any]:
    """A resolver pod as the API server returns it (containerd, k8s 1.34); state None: not yet reported."""
    pod = copy.deepcopy(build_resolver_pod(role(image=image)))
    meta = pod["metadata"]
    meta.update(
        {
            "namespace": "default",
            "uid": "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b",
            "resourceVersion": "51022",
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "ownerReferences": [
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND,
                    "name": "web",
                    "uid": "7a0e5d1c-3b2f-4c4d-9e8f-1a2b3c4d5e6f",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
    )
    if not annotated:
        del meta["annotations"]
    pod["spec"].update(
        {"nodeName": "vmrole-node", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"}
    )
    status: dict[str, Any] = {
        "phase": phase,
        "qosClass": "Burstable",
        "hostIP": "192.0.2.2",
        "startTime": "2026-11-22T10:00:00Z",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T10:00:00Z"},
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "ContainersNotReady",
                "message": "containers with unready status: [resolve]",
                "lastTransitionTime": "2026-11-22T10:00:00Z",
            },
        ],
    }
    if state is not None:
        status["containerStatuses"] = [
            {
                "name": c.RESOLVER_CONTAINER,
                "image": image,
                "imageID": image_id,
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": state,
                "lastState": {},
            }
        ]
    pod["status"] = status
    return pod


def start_error() -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": 128,
            "reason": "StartError",
            "message": START_ERROR,
            "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": "2026-11-22T10:00:02Z",
            "containerID": "containerd://" + "5e" * 32,
        }
    }


def test_start_error_with_a_repository_digest_pins() -> None:
    pod = resolver_pod(start_error(), image_id=REPO_DIGEST, phase="Failed")
    assert read_resolver_pod(pod) == Resolution(TAG, pinned=REPO_DIGEST)


@pytest.mark.parametrize(
    ("image", "image_id", "pinned"),
    [
        pytest.param(
            "localhost:5000/team/web:1",
            f"localhost:5000/team/web@sha256:{HEX}",
            f"localhost:5000/team/web@sha256:{HEX}",
            id="registry-port-kept",
        ),
        pytest.param(
            "busybox:1.36",
            f"docker.io/library/busybox@sha256:{HEX}",
            f"busybox@sha256:{HEX}",
            id="spec-spelling-kept",
        ),
    ],
)
def test_pin_keeps_the_repository_as_the_spec_spells_it(image: str, image_id: str, pinned: str) -> None:
    pod = resolver_pod(start_error(), image=image, image_id=image_id, phase="Failed")
    assert read_resolver_pod(pod) == Resolution(image, pinned=pinned)


def test_bare_config_id_does_not_pin() -> None:
    """`sha256:<config id>` is no pullable name: reported as a failure, never silently stuck."""
    pod = resolver_pod(start_error(), image_id=CONFIG_ID, phase="Failed")
    resolution = read_resolver_pod(pod)
    assert resolution is not None
    assert resolution.pinned is None
    assert resolution.failure == f"the node reports image ID {CONFIG_ID}, not a repository digest"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImagePull", 'failed to pull and unpack image "localhost/vmrole-test/web:1": not found'),
        ("ImagePullBackOff", 'Back-off pulling image "localhost/vmrole-test/web:1"'),
        ("InvalidImageName", 'Failed to apply default image tag "localhost/vmrole-test/web:1"'),
    ],
)
def test_image_that_cannot_be_pulled_is_a_failure(reason: str, message: str) -> None:
    pod = resolver_pod({"waiting": {"reason": reason, "message": message}})
    resolution = read_resolver_pod(pod)
    assert resolution == Resolution(TAG, failure=f"{reason}: {message}")


def test_pull_failure_without_message_is_the_reason() -> None:
    pod = resolver_pod({"waiting": {"reason": "ErrImagePull"}})
    assert read_resolver_pod(pod) == Resolution(TAG, failure="ErrImagePull")


def test_pod_without_the_annotation_is_not_a_resolver() -> None:
    pod = resolver_pod(start_error(), image_id=REPO_DIGEST, phase="Failed", annotated=False)
    assert read_resolver_pod(pod) is None
    assert read_resolver_pod({"metadata": {"name": "web-7d9c5b6f4-x2k4p"}, "status": {}}) is None


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(None, id="no-container-status-yet"),
        pytest.param({"waiting": {"reason": "ContainerCreating"}}, id="container-creating"),
    ],
)
def test_pod_still_creating_has_neither_pin_nor_failure(state: dict[str, Any] | None) -> None:
    resolution = read_resolver_pod(resolver_pod(state))
    assert resolution == Resolution(TAG)
    assert resolution is not None
    assert resolution.pinned is None
    assert resolution.failure is None


def test_other_containers_are_ignored() -> None:
    pod = resolver_pod(None)
    pod["status"]["containerStatuses"] = [
        {"name": "sidecar", "image": TAG, "imageID": REPO_DIGEST, "state": start_error()},
        {"name": "other", "image": TAG, "imageID": "", "state": {"waiting": {"reason": "ErrImagePull"}}},
    ]
    assert read_resolver_pod(pod) == Resolution(TAG)
