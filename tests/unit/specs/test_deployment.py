"""The Deployment: pod template, containers, auto-start probes, disk, setup, restricted PSS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.restricted_pss import RESTRICTED_VOLUME_TYPES
from tests.support.role_bodies import example_body, minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import VMRole, parse_role
from vmrole_operator.specs.deployment import build_deployment, subpath_for

from .roles import PINNED, all_containers, example_role, pod_spec


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
        {"name": "role-environment", "mountPath": "/etc/vmrole/role", "readOnly": True},
        {"name": "settings", "mountPath": "/etc/vmrole/settings", "readOnly": True},
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
    assert containers[1]["image"] == "registry.k8s.io/pause:3.10.1"


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
    subpaths = [m["subPath"] for m in spec["containers"][0]["volumeMounts"] if "subPath" in m]
    assert len(set(subpaths)) == len(subpaths)


@pytest.mark.parametrize(
    ("path", "sub"), [("/tmp", "tmp"), ("/var/cache/app", "var/cache/app"), ("/.x", ".x")]
)
def test_subpath_for(path: str, sub: str) -> None:
    assert subpath_for(path) == sub


def test_no_disk_when_no_mount_paths() -> None:
    spec = pod_spec(build_deployment(parse_role(minimal_body(ephemeralDisk={"mountPaths": []})), PINNED, 1))
    assert c.EPHEMERAL_DISK_VOLUME not in [v["name"] for v in spec["volumes"]]
    assert [m["name"] for m in spec["containers"][0]["volumeMounts"]] == ["role-environment", "settings"]


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
    assert [v["name"] for v in spec["volumes"]] == [c.EPHEMERAL_DISK_VOLUME, "role-environment", "settings"]


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
    assert dep["spec"]["template"]["spec"]["tolerations"][0] == {
        "key": "kwok.x-k8s.io/node",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
