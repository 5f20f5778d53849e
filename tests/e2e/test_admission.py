"""Bad VMRoles are refused by the API server itself (schema and CEL rules), naming the field (real cluster).

No operator runs here: everything below is admission. Each invalid case is the valid role of
`roles.role_manifest()` with one mutation, and is checked for HTTP 422 plus stable parts of what the
API server really answers: the field path it reports and, for a CEL rule, the rule's message text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from vmrole_operator import models as m
from vmrole_operator.models import VMRoleSpec

from .conftest import kubectl
from .kube import Kube
from .roles import GROUP, PLURAL, VERSION, create_role, get_role, role_manifest

pytestmark = pytest.mark.usefixtures("crd")

Mutation = Callable[[dict[str, Any]], object]  # changes the spec in place; any return value is ignored
NAME_55 = "w" * 55


def _set(**fields: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        spec.update(fields)

    return mutate


def _drop(field: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        del spec[field]

    return mutate


# (id, role name, mutation of the valid spec, substrings the API server's message must contain).
# Schema errors read `<field path>: <what is wrong>`; CEL rule errors read `<field path>: Invalid value:
# "object": <rule message>`, so for those the test asserts the path and the rule's own message.
INVALID: list[tuple[str, str, Mutation, list[str]]] = [
    ("missing-image", "web", _drop("image"), ["spec.image: Required value"]),
    (
        "malformed-image",
        "web",
        _set(image="localhost/vmrole-test/Web::1"),
        ['spec.image: Invalid value: "localhost/vmrole-test/Web::1"', "spec.image in body should match"],
    ),
    (
        "instances-negative",
        "web",
        _set(instances=-1),
        ["spec.instances: Invalid value: -1", "should be greater than or equal to 0"],
    ),
    (
        "instances-string",
        "web",
        _set(instances="3"),
        ["spec.instances: Invalid value: ", "spec.instances in body must be of type integer"],
    ),
    (
        "input-port-0",
        "web",
        lambda s: s["endpoints"]["input"][0].update(port=0),
        ["spec.endpoints.input[0].port: Invalid value: 0", "should be greater than or equal to 1"],
    ),
    (
        "internal-port-70000",
        "web",
        lambda s: s["endpoints"]["internal"][0].update(port=70000),
        ["spec.endpoints.internal[0].port: Invalid value: 70000", "should be less than or equal to 65535"],
    ),
    (
        "check-port-70000",
        "web",
        lambda s: s["autoStart"][0]["tcpSocket"].update(port=70000),
        ["spec.autoStart[0].tcpSocket.port: Invalid value: 70000", "should be less than or equal to 65535"],
    ),
    (
        "unknown-service-type",
        "web",
        lambda s: s["endpoints"].update(serviceType="ExternalName"),
        [
            'spec.endpoints.serviceType: Unsupported value: "ExternalName"',
            '"ClusterIP", "NodePort", "LoadBalancer"',
        ],
    ),
    (
        "duplicate-autostart-names",
        "web",
        lambda s: s["autoStart"][1].update(name="http"),
        ['spec.autoStart[1]: Duplicate value: {"name":"http"}'],
    ),
    (
        "too-many-autostart-checks",
        "web",
        _set(autoStart=[{"name": f"c{i}", "tcpSocket": {"port": 8080}} for i in range(m.MAX_CHECKS + 1)]),
        [f"spec.autoStart: Too many: {m.MAX_CHECKS + 1}: must have at most {m.MAX_CHECKS} items"],
    ),
    (
        "check-tcp-and-http",
        "web",
        lambda s: s["autoStart"][1].update(tcpSocket={"port": 8080}),
        ["spec.autoStart[1]: Invalid value: ", m.MSG_CHECK_ONE_KIND],
    ),
    (
        "check-neither-kind",
        "web",
        lambda s: s["autoStart"][1].pop("httpGet"),
        ["spec.autoStart[1]: Invalid value: ", m.MSG_CHECK_ONE_KIND],
    ),
    (
        "http-check-relative-path",
        "web",
        lambda s: s["autoStart"][1]["httpGet"].update(path="healthz"),
        ['spec.autoStart[1].httpGet.path: Invalid value: "healthz"', "should match"],
    ),
    (
        "answer-file-two-sources",
        "web",
        lambda s: s["setup"]["answerFile"].update(configMapName="answers"),
        ["spec.setup.answerFile: Invalid value: ", m.MSG_ANSWER_FILE_ONE_SOURCE],
    ),
    (
        "answer-file-no-source",
        "web",
        lambda s: s["setup"].update(answerFile={"mountPath": "/etc/vmrole/answer"}),
        ["spec.setup.answerFile: Invalid value: ", m.MSG_ANSWER_FILE_ONE_SOURCE],
    ),
    (
        "setup-empty-command",
        "web",
        lambda s: s["setup"].update(command=[]),
        ["spec.setup.command: Invalid value: 0", "should have at least 1 items"],
    ),
    (
        "upgrade-both-zero",
        "web",
        _set(upgrade={"maxUnavailable": 0, "maxSurge": 0}),
        ["spec.upgrade: Invalid value: ", m.MSG_UPGRADE_NOT_BOTH_ZERO],
    ),
    (
        "input-target-port-unchecked",
        "web",
        lambda s: s["endpoints"]["input"][0].update(targetPort=9090),
        ["spec.endpoints.input: Invalid value: ", m.MSG_INPUT_TARGET_CHECKED],
    ),
    (
        "duplicate-input-ports",
        "web",
        lambda s: s["endpoints"]["input"].append({"name": "http2", "port": 80, "targetPort": 8080}),
        ["spec.endpoints.input: Invalid value: ", m.MSG_INPUT_PORTS_UNIQUE],
    ),
    (
        "duplicate-internal-ports",
        "web",
        lambda s: s["endpoints"]["internal"].append({"name": "peer2", "port": 7000}),
        ["spec.endpoints.internal: Invalid value: ", m.MSG_INTERNAL_PORTS_UNIQUE],
    ),
    (
        "relative-mount-path",
        "web",
        lambda s: s["ephemeralDisk"].update(mountPaths=["/tmp", "scratch"]),
        ['spec.ephemeralDisk.mountPaths[1]: Invalid value: "scratch"', "should match"],
    ),
    (
        "root-mount-path",
        "web",
        lambda s: s["ephemeralDisk"].update(mountPaths=["/tmp", "/"]),
        ['spec.ephemeralDisk.mountPaths[1]: Invalid value: "/"', "should match"],
    ),
    (
        "duplicate-mount-path",
        "web",
        lambda s: s["ephemeralDisk"].update(mountPaths=["/tmp", "/tmp"]),
        ['spec.ephemeralDisk.mountPaths[1]: Duplicate value: "/tmp"'],
    ),
    (
        "answer-mount-is-ephemeral-mount",
        "web",
        lambda s: s["setup"]["answerFile"].update(mountPath="/scratch"),
        ["spec.setup.answerFile.mountPath: Invalid value: ", m.MSG_ANSWER_MOUNT_CLASH],
    ),
    # Root rules cannot carry a fieldPath (see models.ROOT_VALIDATIONS): the message names the field.
    ("name-55-characters", NAME_55, _set(), [m.MSG_NAME_TOO_LONG]),
    ("name-not-dns-1035", "9web", _set(), [m.MSG_NAME_DNS_1035]),
    (
        "auto-start-timeout-0",
        "web",
        _set(autoStartTimeoutSeconds=0),
        ["spec.autoStartTimeoutSeconds: Invalid value: 0", "should be greater than or equal to 1"],
    ),
    (
        "env-value-and-value-from",
        "web",
        _set(
            env=[{"name": "MODE", "value": "demo", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        ),
        ["spec.env[0]: Invalid value: ", m.MSG_ENV_VALUE_XOR_FROM],
    ),
    (
        "duplicate-env-names",
        "web",
        _set(env=[{"name": "MODE", "value": "a"}, {"name": "MODE", "value": "b"}]),
        ['spec.env[1]: Duplicate value: {"name":"MODE"}'],
    ),
    (
        "run-as-root",
        "web",
        _set(securityContext={"runAsUser": 0}),
        ["spec.securityContext.runAsUser: Invalid value: 0", "should be greater than or equal to 1"],
    ),
]


def _refusal(kube: Kube, namespace: str, manifest: dict[str, Any]) -> tuple[int, str]:
    """Create `manifest` for real; return the API server's status code and message (fails if accepted)."""
    try:
        create_role(kube, namespace, manifest)
    except ApiException as e:
        return int(e.status), str(json.loads(e.body)["message"])
    pytest.fail(f"the API server accepted an invalid VMRole: {manifest['spec']}")


@pytest.mark.parametrize(
    ("name", "mutate", "expected"),
    [pytest.param(name, mutate, expected, id=id_) for id_, name, mutate, expected in INVALID],
)
def test_invalid_role_is_refused_naming_the_field(
    kube: Kube, namespace: str, name: str, mutate: Mutation, expected: list[str]
) -> None:
    manifest = role_manifest(name)
    mutate(manifest["spec"])

    status, message = _refusal(kube, namespace, manifest)

    assert status == 422, message
    assert message.startswith(f'VMRole.vmrole.dev "{name}" is invalid: '), message
    for part in expected:
        assert part in message
    listed = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    assert listed == []


def test_the_invalid_cases_are_valid_without_their_mutation(kube: Kube, namespace: str) -> None:
    """The base every case mutates is itself accepted, so each refusal is due to its one mutation."""
    for name in ("web", "w" * 54):
        kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, role_manifest(name), dry_run="All"
        )


def test_minimal_role_is_accepted_with_schema_defaults(kube: Kube, namespace: str) -> None:
    manifest = role_manifest("minimal")
    manifest["spec"] = {"image": manifest["spec"]["image"]}

    create_role(kube, namespace, manifest)
    spec = get_role(kube, namespace, "minimal")["spec"]

    # The contract's defaults (SEMANTICS.md), filled in by the API server; nested objects may grow fields.
    assert spec["image"] == manifest["spec"]["image"]
    assert spec["instances"] == 1
    assert spec["autoStartTimeoutSeconds"] == 300
    assert spec["ephemeralDisk"] == {"mountPaths": ["/tmp"], "sizeLimit": "1Gi"}
    assert {k: spec["upgrade"][k] for k in ("maxUnavailable", "maxSurge", "paused")} == {
        "maxUnavailable": 1,
        "maxSurge": 0,
        "paused": False,
    }
    assert spec["endpoints"]["serviceType"] == "ClusterIP"
    assert spec["healing"]["enabled"] is True
    assert spec["securityContext"]["runAsUser"] == 65532
    assert "autoStart" not in spec
    assert "setup" not in spec


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_kubectl_explain_prints_the_auto_start_description(kube: Kube) -> None:
    description = VMRoleSpec.model_fields["autoStart"].description
    assert description

    def explain() -> str | None:
        out = kubectl("explain", "vmrole.spec.autoStart", check=False)
        return out if _words(description) in _words(out) else None

    # The published OpenAPI may lag a moment behind a CRD that was just applied.
    explained = kube.wait_for(explain, 60, "kubectl explain to show the autoStart description", interval=1)
    assert explained is not None
    assert "FIELD: autoStart <[]Object>" in explained
    assert "tcpSocket" in explained
    assert "httpGet" in explained
