"""Child objects built from a VMRole, their ownership, and the drift check."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vmrole_operator import constants as c
from vmrole_operator.builders import (
    build_answer_file_configmap,
    build_children,
    build_deployment,
    build_input_service,
    build_internal_service,
    build_network_policy,
    child_differs,
    parse_quantity,
    subpath_for,
)
from vmrole_operator.models import VMRole, parse_role

from .restricted_pss import RESTRICTED_VOLUME_TYPES
from .test_models import example_body, minimal_body

PINNED = "localhost/vmrole-test/web@sha256:" + "a" * 64
OWNER_UID = "6f1d0c9e-2b3a-4c5d-8e7f-0a1b2c3d4e5f"


def example_role() -> VMRole:
    return parse_role(example_body())


def owner_body(body: dict[str, Any] | None = None) -> dict[str, Any]:
    owner = copy.deepcopy(body or example_body())
    owner["metadata"]["uid"] = OWNER_UID
    return owner


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def all_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]


# --- Deployment ---


def test_deployment_identity_and_strategy() -> None:
    dep = build_deployment(example_role(), PINNED, 3)
    assert (dep["apiVersion"], dep["kind"]) == ("apps/v1", "Deployment")
    assert dep["metadata"]["name"] == "web"
    assert dep["metadata"]["labels"] == {
        c.ROLE_LABEL: "web",
        c.MANAGED_BY_LABEL: "vmrole-operator",
        "app.kubernetes.io/name": "vmrole",
        "app.kubernetes.io/instance": "web",
    }
    spec = dep["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {c.ROLE_LABEL: "web", c.IN_POOL_LABEL: "true"}}
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["paused"] is False
    assert spec["template"]["metadata"]["labels"] == {
        c.ROLE_LABEL: "web",
        c.IN_POOL_LABEL: "true",
        c.IN_ROTATION_LABEL: "true",  # a new instance enters rotation without the operator
    }


def test_deployment_follows_upgrade_and_peer_group() -> None:
    body = example_body()
    body["spec"]["upgrade"] = {"maxUnavailable": 0, "maxSurge": 2, "paused": True}
    body["spec"]["endpoints"]["peerGroup"] = "shop"
    dep = build_deployment(parse_role(body), PINNED, 1)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 2}
    assert dep["spec"]["paused"] is True
    assert dep["spec"]["template"]["metadata"]["labels"] == {
        c.ROLE_LABEL: "web",
        c.IN_POOL_LABEL: "true",
        c.IN_ROTATION_LABEL: "true",
        c.PEER_GROUP_LABEL: "shop",
    }
    # The selector never includes the peer group: changing it must not orphan instances.
    assert dep["spec"]["selector"] == {"matchLabels": {c.ROLE_LABEL: "web", c.IN_POOL_LABEL: "true"}}


def test_pod_spec_basics() -> None:
    spec = pod_spec(build_deployment(example_role(), PINNED, 3))
    assert "readinessGates" not in spec  # the kubelet alone decides Ready
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False
    assert spec["terminationGracePeriodSeconds"] == 35  # 30 + the default 5 s drain
    assert "nodeSelector" not in spec


def test_main_container() -> None:
    spec = pod_spec(build_deployment(example_role(), PINNED, 3))
    [main] = spec["containers"]
    assert main["name"] == c.MAIN_CONTAINER
    assert main["image"] == PINNED
    assert main["imagePullPolicy"] == "IfNotPresent"
    assert main["command"] == ["/bin/sh", "-c", "exec httpd -f -p 8080"]
    assert main["args"] == []
    assert main["env"] == [{"name": "MODE", "value": "demo"}]
    # 8080 (input target and both checks) and 7000 (internal), once each.
    assert main["ports"] == [
        {"containerPort": 7000, "protocol": "TCP"},
        {"containerPort": 8080, "protocol": "TCP"},
    ]
    assert main["volumeMounts"] == [
        {"name": c.EPHEMERAL_DISK_VOLUME, "mountPath": "/scratch", "subPath": "scratch"},
        {"name": c.EPHEMERAL_DISK_VOLUME, "mountPath": "/tmp", "subPath": "tmp"},
    ]
    assert "resources" not in main
    assert "livenessProbe" not in main
    assert "startupProbe" not in main


def test_an_http_check_subsumes_a_tcp_check_on_its_port() -> None:
    # example: tcp 8080 and http 8080/healthz: the GET had to connect, so one probe covers both.
    [main] = pod_spec(build_deployment(example_role(), PINNED, 3))["containers"]
    assert main["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/healthz", "scheme": "HTTP"},
        "periodSeconds": 1,
        "timeoutSeconds": 1,
        "failureThreshold": 1,
        "successThreshold": 1,
    }


def _with_checks(*checks: dict[str, Any]) -> VMRole:
    body = example_body()
    body["spec"]["autoStart"] = list(checks)
    return parse_role(body)


def test_each_further_check_is_a_container_with_its_own_probe() -> None:
    role = _with_checks(
        {"name": "http", "httpGet": {"port": 8080, "path": "/healthz"}},
        {"name": "peer", "tcpSocket": {"port": 7000}},
        {"name": "admin", "httpGet": {"port": 9090, "path": "/ready", "scheme": "HTTPS"}},
    )
    main, peer, admin = pod_spec(build_deployment(role, PINNED, 3, check_image="pause:test"))["containers"]
    assert main["name"] == c.MAIN_CONTAINER
    assert main["readinessProbe"]["httpGet"]["port"] == 8080
    # Held back after each start until every other check was probed since: see RESTART_GUARD_SECONDS.
    assert main["readinessProbe"]["initialDelaySeconds"] == 2
    assert [peer["name"], admin["name"]] == ["check-peer", "check-admin"]
    assert peer["image"] == admin["image"] == "pause:test"
    assert peer["readinessProbe"] == {
        "tcpSocket": {"port": 7000},
        "periodSeconds": 1,
        "timeoutSeconds": 1,
        "failureThreshold": 1,
        "successThreshold": 1,
    }
    assert admin["readinessProbe"]["httpGet"] == {"port": 9090, "path": "/ready", "scheme": "HTTPS"}
    for check in (peer, admin):
        assert "command" not in check  # the image's own entrypoint (pause) runs
        assert check["resources"]["limits"] == {"cpu": "10m", "memory": "16Mi"}
        assert check["securityContext"]["readOnlyRootFilesystem"] is True
    # Regular containers, never init containers (native sidecars start one by one before the main).
    assert [x["name"] for x in pod_spec(build_deployment(role, PINNED, 3)).get("initContainers", [])] == [
        c.SETUP_CONTAINER
    ]


def test_the_default_check_image_is_the_sandbox_image() -> None:
    role = _with_checks({"name": "a", "tcpSocket": {"port": 8080}}, {"name": "b", "tcpSocket": {"port": 2}})
    containers = pod_spec(build_deployment(role, PINNED, 1))["containers"]
    assert containers[1]["image"] == "registry.k8s.io/pause:3.10"


def test_one_check_needs_no_delay() -> None:
    [main] = pod_spec(build_deployment(_with_checks({"name": "a", "tcpSocket": {"port": 8080}}), PINNED, 1))[
        "containers"
    ]
    assert main["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert "initialDelaySeconds" not in main["readinessProbe"]


def test_no_probe_without_auto_start() -> None:
    [main] = pod_spec(build_deployment(parse_role(minimal_body()), PINNED, 1))["containers"]
    assert "readinessProbe" not in main
    assert "ports" not in main


def test_one_emptydir_many_mount_points() -> None:
    spec = pod_spec(build_deployment(example_role(), PINNED, 3))
    disks = [v for v in spec["volumes"] if v["name"] == c.EPHEMERAL_DISK_VOLUME]
    assert disks == [{"name": c.EPHEMERAL_DISK_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}}]
    subpaths = [m["subPath"] for m in spec["containers"][0]["volumeMounts"]]
    assert len(set(subpaths)) == len(subpaths)


@pytest.mark.parametrize(
    ("path", "sub"), [("/tmp", "tmp"), ("/var/cache/app", "var/cache/app"), ("/.x", ".x")]
)
def test_subpath_for(path: str, sub: str) -> None:
    assert subpath_for(path) == sub


def test_no_disk_when_no_mount_paths() -> None:
    spec = pod_spec(build_deployment(parse_role(minimal_body(ephemeralDisk={"mountPaths": []})), PINNED, 1))
    assert "volumes" not in spec
    assert "volumeMounts" not in spec["containers"][0]


def test_setup_init_container() -> None:
    spec = pod_spec(build_deployment(example_role(), PINNED, 3))
    [setup] = spec["initContainers"]
    [main] = spec["containers"]
    assert setup["name"] == c.SETUP_CONTAINER
    assert setup["image"] == PINNED  # the same golden image
    assert setup["command"] == ["/bin/sh", "-c", "cp /etc/vmrole/answer/unattend.xml /scratch/"]
    assert "args" not in setup
    assert setup["env"] == main["env"]
    assert setup["securityContext"] == main["securityContext"]
    assert setup["volumeMounts"] == [
        *main["volumeMounts"],
        {"name": c.ANSWER_FILE_VOLUME, "mountPath": "/etc/vmrole/answer", "readOnly": True},
    ]
    assert {"name": c.ANSWER_FILE_VOLUME, "configMap": {"name": "web-answer-file"}} in spec["volumes"]
    assert "readinessProbe" not in setup


@pytest.mark.parametrize(
    ("answer", "volume"),
    [
        ({"configMapName": "answers"}, {"configMap": {"name": "answers"}}),
        ({"secretName": "answers"}, {"secret": {"secretName": "answers"}}),
        ({"data": {"a": "b"}}, {"configMap": {"name": "web-answer-file"}}),
    ],
)
def test_answer_file_sources(answer: dict[str, Any], volume: dict[str, Any]) -> None:
    role = parse_role(minimal_body(setup={"command": ["s"], "answerFile": answer}))
    volumes = pod_spec(build_deployment(role, PINNED, 1))["volumes"]
    assert {"name": c.ANSWER_FILE_VOLUME, **volume} in volumes


def test_setup_without_answer_file() -> None:
    role = parse_role(minimal_body(setup={"command": ["s"], "args": ["--quiet"]}))
    spec = pod_spec(build_deployment(role, PINNED, 1))
    [setup] = spec["initContainers"]
    assert setup["args"] == ["--quiet"]
    assert [v["name"] for v in spec["volumes"]] == [c.EPHEMERAL_DISK_VOLUME]


def test_no_init_container_without_setup() -> None:
    assert "initContainers" not in pod_spec(build_deployment(parse_role(minimal_body()), PINNED, 1))


def test_resources_node_selector_and_identity() -> None:
    role = parse_role(
        minimal_body(
            setup={"command": ["s"]},
            resources={"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}},
            nodeSelector={"kubernetes.io/os": "linux"},
            securityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
        )
    )
    spec = pod_spec(build_deployment(role, PINNED, 1))
    for container in all_containers(build_deployment(role, PINNED, 1)):
        assert container["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}}
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 2000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# --- the restricted Pod Security Standard, control by control ---


@pytest.mark.parametrize(
    "body",
    [
        example_body(),
        minimal_body(),
        minimal_body(setup={"command": ["s"], "answerFile": {"secretName": "a"}}),
    ],
    ids=["example", "minimal", "secret-answer"],
)
def test_pod_meets_restricted_pod_security_standard(body: dict[str, Any]) -> None:
    dep = build_deployment(parse_role(body), PINNED, 1)
    spec = pod_spec(dep)
    pod_sc = spec["securityContext"]
    containers = all_containers(dep)
    # Baseline: host namespaces
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert not spec.get(host_namespace), host_namespace
    # Baseline: HostProcess
    assert "windowsOptions" not in pod_sc
    # Baseline: sysctls
    assert "sysctls" not in pod_sc
    # Baseline: SELinux (no custom type/user/role)
    assert "seLinuxOptions" not in pod_sc
    # Baseline: AppArmor (unset or RuntimeDefault)
    assert "appArmorProfile" not in pod_sc
    assert not any(
        k.startswith("container.apparmor")
        for k in dep["spec"]["template"].get("metadata", {}).get("annotations", {})
    )
    # Baseline: HostPath volumes / Restricted: volume types
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUME_TYPES, kinds
    # Restricted: seccomp set to RuntimeDefault (pod level, no container overrides it)
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # Restricted: running as non-root, and not as uid 0
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    for container in containers:
        sc = container["securityContext"]
        # Baseline: privileged containers
        assert not sc.get("privileged")
        # Baseline: host ports
        assert all("hostPort" not in port for port in container.get("ports", []))
        # Baseline: /proc mount type
        assert sc.get("procMount", "Default") == "Default"
        # Restricted: privilege escalation
        assert sc["allowPrivilegeEscalation"] is False
        # Restricted: capabilities drop ALL, add nothing beyond NET_BIND_SERVICE
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        # Restricted: non-root at container level too; no uid 0 override
        assert sc["runAsNonRoot"] is True
        assert sc.get("runAsUser", 1) != 0
        assert "seccompProfile" not in sc or sc["seccompProfile"]["type"] in {"RuntimeDefault", "Localhost"}
        # The golden image is read-only
        assert sc["readOnlyRootFilesystem"] is True


# --- Services, NetworkPolicy, ConfigMap ---


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


def test_answer_file_configmap() -> None:
    cm = build_answer_file_configmap(example_role())
    assert cm == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "web-answer-file",
            "labels": {c.ROLE_LABEL: "web", c.MANAGED_BY_LABEL: "vmrole-operator"},
        },
        "data": {"unattend.xml": "<unattend/>"},
    }
    assert (
        build_answer_file_configmap(
            parse_role(minimal_body(setup={"command": ["s"], "answerFile": {"secretName": "s"}}))
        )
        is None
    )
    assert build_answer_file_configmap(parse_role(minimal_body())) is None


# --- children ---


def test_build_children_are_owned_and_labelled() -> None:
    owner = owner_body()
    owner["metadata"]["labels"] = {"team": "shop", c.ROLE_LABEL: "something-else"}
    children = build_children(owner, parse_role(owner), PINNED, 3)
    assert [(ch["kind"], ch["metadata"]["name"]) for ch in children] == [
        ("ConfigMap", "web-answer-file"),
        ("Deployment", "web"),
        ("Service", "web"),
        ("Service", "web-internal"),
        ("NetworkPolicy", "web"),
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "default"
        assert meta["labels"][c.ROLE_LABEL] == "web"  # ours wins over the owner's
        assert meta["labels"][c.MANAGED_BY_LABEL] == "vmrole-operator"
        assert meta["labels"]["team"] == "shop"
        assert "generateName" not in meta
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "vmrole.dev/v1alpha1",
                "kind": "VMRole",
                "name": "web",
                "uid": OWNER_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    # Owner labels never reach the pod template (that would roll every instance).
    assert children[1]["spec"]["template"]["metadata"]["labels"] == {
        c.ROLE_LABEL: "web",
        c.IN_POOL_LABEL: "true",
        c.IN_ROTATION_LABEL: "true",
    }
    # Each child has its own owner-reference dict.
    children[0]["metadata"]["ownerReferences"][0]["name"] = "changed"
    assert children[1]["metadata"]["ownerReferences"][0]["name"] == "web"


def test_build_children_never_a_statefulset() -> None:
    for body in (example_body(), minimal_body()):
        owner = owner_body(body)
        kinds = [child["kind"] for child in build_children(owner, parse_role(owner), PINNED, 1)]
        assert "StatefulSet" not in kinds
        assert kinds.count("Deployment") == 1


def test_minimal_role_has_only_a_deployment() -> None:
    owner = owner_body(minimal_body())
    children = build_children(owner, parse_role(owner), PINNED, 1)
    assert [child["kind"] for child in children] == ["Deployment"]


def test_builders_are_pure() -> None:
    owner = owner_body()
    before = copy.deepcopy(owner)
    role = parse_role(owner)
    first = build_children(owner, role, PINNED, 3)
    second = build_children(owner, role, PINNED, 3)
    assert first == second
    assert owner == before


# --- drift ---


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


@pytest.mark.parametrize(
    ("text", "value"),
    [("1Gi", 2**30), ("1024Mi", 2**30), ("500m", 0.5), ("0.5", 0.5), ("1e3", 1000), ("1k", 1000), ("2", 2)],
)
def test_parse_quantity(text: str, value: float) -> None:
    parsed = parse_quantity(text)
    assert parsed is not None
    assert float(parsed) == value


def test_parse_quantity_rejects_non_quantities() -> None:
    assert parse_quantity("lots") is None
    assert parse_quantity("1Gb") is None


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


def test_reimage_round_goes_into_the_pod_template_and_drain_into_pre_stop() -> None:
    role = parse_role(minimal_body())
    plain = build_deployment(role, PINNED, 2)
    assert "annotations" not in plain["spec"]["template"]["metadata"]
    dep = build_deployment(role, PINNED, 2, reimage_round="2026-11-22T10:00:00Z")
    assert dep["spec"]["template"]["metadata"]["annotations"] == {
        c.REIMAGE_ROUND_ANNOTATION: "2026-11-22T10:00:00Z"
    }
    main = dep["spec"]["template"]["spec"]["containers"][0]
    assert main["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35


def test_tolerations_reach_the_pods() -> None:
    body = minimal_body(
        tolerations=[{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]
    )
    dep = build_deployment(parse_role(body), PINNED, 1)
    assert dep["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert (
        "tolerations"
        not in build_deployment(parse_role(minimal_body()), PINNED, 1)["spec"]["template"]["spec"]
    )
