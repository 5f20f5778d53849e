"""Bad VMRoles are refused by the API server itself (schema and CEL rules), naming the field (real cluster).

No operator runs here: everything below is admission, sent as server-side dry runs. Each invalid case
is the valid role of `roles.role_manifest()` with one mutation, and is checked for HTTP 422 plus
stable parts of what the API server really answers: the field path it reports and, for a CEL rule,
the rule's message text. Many cases passed the schema once and failed only later, when the operator's
Deployment, Service or ConfigMap was refused (quantities, nodeSelector keys, tolerations, env
sources, answer-file names, int32 bounds, the role name's length).
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
INT32_OVER = 2**31
# The floor of len(INVALID): a case deleted by accident fails the suite instead of going unnoticed.
MIN_INVALID_CASES = 78


def _set(**fields: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        spec.update(fields)

    return mutate


def _drop(field: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        del spec[field]

    return mutate


def _env_from(source: dict[str, Any]) -> Mutation:
    return _set(env=[{"name": "FROM", "valueFrom": source}])


def _answer_data(data: dict[str, str]) -> Mutation:
    return lambda s: s["setup"]["answerFile"].update(data=data)


def _resources(**fields: dict[str, str]) -> Mutation:
    return _set(resources=fields)


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
    # --- names ---
    ("name-with-a-dot", "web.v1", _set(), [m.MSG_NAME_DNS_1035]),
    ("name-uppercase", "Web", _set(), ['metadata.name: Invalid value: "Web"', m.MSG_NAME_DNS_1035]),
    (
        "check-name-58-characters",
        "web",
        lambda s: s["autoStart"][1].update(name="c" * 58),
        ["spec.autoStart[1].name: Too long: may not be more than 57"],
    ),
    # --- quantities: the Deployment parses them; they must parse here ---
    (
        "size-limit-exponent-overflows",
        "web",
        lambda s: s["ephemeralDisk"].update(sizeLimit="1e99999999999999999999"),
        ['spec.ephemeralDisk.sizeLimit: Invalid value: "1e99999999999999999999"', "should match"],
    ),
    (
        "limit-not-a-quantity",
        "web",
        _resources(limits={"memory": "a lot"}),
        ['spec.resources.limits.memory: Invalid value: "a lot"', "should match"],
    ),
    (
        "request-with-a-3-digit-exponent",
        "web",
        _resources(requests={"cpu": "1e100"}),
        ['spec.resources.requests.cpu: Invalid value: "1e100"', "should match"],
    ),
    (
        "negative-request",
        "web",
        _resources(requests={"memory": "-64Mi"}),
        ['spec.resources.requests.memory: Invalid value: "-64Mi"', "should match"],
    ),
    (
        "request-of-an-unknown-resource",
        "web",
        _resources(requests={"gpu": "1"}),
        ["spec.resources.requests: Invalid value: ", m.MSG_RESOURCE_NAMES["requests"]],
    ),
    (
        "limit-of-an-uppercase-resource",
        "web",
        _resources(limits={"Memory": "1Gi"}),
        ["spec.resources.limits: Invalid value: ", m.MSG_RESOURCE_NAMES["limits"]],
    ),
    (
        "cpu-request-over-limit",
        "web",
        _resources(requests={"cpu": "2"}, limits={"cpu": "1500m"}),
        ["spec.resources.requests: Invalid value: ", m.MSG_REQUESTS_WITHIN_LIMITS],
    ),
    (
        "memory-request-1Gi-over-limit-1G",
        "web",
        _resources(requests={"memory": "1Gi"}, limits={"memory": "1G"}),
        ["spec.resources.requests: Invalid value: ", m.MSG_REQUESTS_WITHIN_LIMITS],
    ),
    (
        "storage-request-over-limit",
        "web",
        _resources(requests={"ephemeral-storage": "2Gi", "cpu": "1"}, limits={"ephemeral-storage": "1Gi"}),
        ["spec.resources.requests: Invalid value: ", m.MSG_REQUESTS_WITHIN_LIMITS],
    ),
    # --- nodeSelector: label keys and values, as the Pod API checks them ---
    (
        "node-selector-key-with-a-space",
        "web",
        _set(nodeSelector={"disk type": "ssd"}),
        ["spec.nodeSelector: Invalid value: ", m.MSG_NODE_SELECTOR_KEYS],
    ),
    (
        "node-selector-key-uppercase-prefix",
        "web",
        _set(nodeSelector={"Example.com/zone": "a"}),
        ["spec.nodeSelector: Invalid value: ", m.MSG_NODE_SELECTOR_KEYS],
    ),
    (
        "node-selector-key-empty-prefix",
        "web",
        _set(nodeSelector={"/zone": "a"}),
        ["spec.nodeSelector: Invalid value: ", m.MSG_NODE_SELECTOR_KEYS],
    ),
    (
        "node-selector-key-name-64",
        "web",
        _set(nodeSelector={"example.com/" + "z" * 64: "a"}),
        ["spec.nodeSelector: Invalid value: ", m.MSG_NODE_SELECTOR_KEYS],
    ),
    (
        "node-selector-key-prefix-254",
        "web",
        _set(nodeSelector={"p" * 254 + "/zone": "a"}),
        ["spec.nodeSelector: Invalid value: ", m.MSG_NODE_SELECTOR_KEYS],
    ),
    (
        "node-selector-value",
        "web",
        _set(nodeSelector={"zone": "a b"}),
        ['spec.nodeSelector.zone: Invalid value: "a b"', "should match"],
    ),
    (
        "node-selector-value-64",
        "web",
        _set(nodeSelector={"zone": "v" * 64}),
        ["spec.nodeSelector.zone: Too long: may not be more than 63"],
    ),
    # --- tolerations ---
    (
        "toleration-seconds-with-no-schedule",
        "web",
        _set(tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 30}]),
        ["spec.tolerations[0].tolerationSeconds: Invalid value: ", m.MSG_TOLERATION_SECONDS_NO_EXECUTE],
    ),
    (
        "toleration-seconds-without-effect",
        "web",
        _set(tolerations=[{"operator": "Exists"}, {"key": "k", "tolerationSeconds": 30}]),
        ["spec.tolerations[1].tolerationSeconds: Invalid value: ", m.MSG_TOLERATION_SECONDS_NO_EXECUTE],
    ),
    (
        "toleration-keyless-equal",
        "web",
        _set(tolerations=[{"operator": "Equal", "value": "v"}]),
        ["spec.tolerations[0].operator: Invalid value: ", m.MSG_TOLERATION_KEYLESS_EXISTS],
    ),
    (
        "toleration-exists-with-a-value",
        "web",
        _set(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
        ["spec.tolerations[0].value: Invalid value: ", m.MSG_TOLERATION_EXISTS_NO_VALUE],
    ),
    (
        "toleration-key",
        "web",
        _set(tolerations=[{"key": "dedicated node", "operator": "Exists"}]),
        ["spec.tolerations[0].key: Invalid value: ", m.MSG_TOLERATION_KEY],
    ),
    (
        "toleration-value",
        "web",
        _set(tolerations=[{"key": "k", "value": "a/b"}]),
        ['spec.tolerations[0].value: Invalid value: "a/b"', "should match"],
    ),
    (
        "toleration-seconds-over-int32",
        "web",
        _set(tolerations=[{"key": "k", "effect": "NoExecute", "tolerationSeconds": INT32_OVER}]),
        [
            "spec.tolerations[0].tolerationSeconds: Invalid value: 2147483648",
            "less than or equal to 2147483647",
        ],
    ),
    # --- env[].valueFrom: the Pod API's sources, each complete ---
    (
        "config-map-ref-without-key",
        "web",
        _env_from({"configMapKeyRef": {"name": "settings"}}),
        ["spec.env[0].valueFrom.configMapKeyRef.key: Required value"],
    ),
    (
        "secret-ref-without-key",
        "web",
        _env_from({"secretKeyRef": {"name": "creds"}}),
        ["spec.env[0].valueFrom.secretKeyRef.key: Required value"],
    ),
    (
        "secret-ref-without-name",
        "web",
        _env_from({"secretKeyRef": {"key": "password"}}),
        ["spec.env[0].valueFrom.secretKeyRef.name: Required value"],
    ),
    (
        "config-map-ref-key-dot-dot",
        "web",
        _env_from({"configMapKeyRef": {"name": "settings", "key": ".."}}),
        ['spec.env[0].valueFrom.configMapKeyRef.key: Invalid value: ".."', "should match"],
    ),
    (
        "value-from-without-a-source",
        "web",
        _env_from({}),
        ["spec.env[0].valueFrom: Invalid value: ", m.MSG_VALUE_FROM_ONE_SOURCE],
    ),
    (
        "value-from-with-two-sources",
        "web",
        _env_from(
            {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "creds", "key": "password"}}
        ),
        ["spec.env[0].valueFrom: Invalid value: ", m.MSG_VALUE_FROM_ONE_SOURCE],
    ),
    (
        "field-ref-unsupported-path",
        "web",
        _env_from({"fieldRef": {"fieldPath": "spec.containers"}}),
        ['spec.env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.containers"'],
    ),
    (
        "resource-field-ref-of-a-gpu",
        "web",
        _env_from({"resourceFieldRef": {"resource": "limits.nvidia.com/gpu"}}),
        ['spec.env[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.nvidia.com/gpu"'],
    ),
    (
        "cpu-divisor-1Mi",
        "web",
        _env_from({"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1Mi"}}),
        ["spec.env[0].valueFrom.resourceFieldRef.divisor: Invalid value: ", m.MSG_DIVISOR],
    ),
    (
        "env-name-with-equals",
        "web",
        _set(env=[{"name": "A=B", "value": "1"}]),
        ['spec.env[0].name: Invalid value: "A=B"', "should match"],
    ),
    # --- the answer file's ConfigMap ---
    (
        "answer-file-name-with-a-slash",
        "web",
        _answer_data({"win/unattend.xml": "<unattend/>"}),
        ["spec.setup.answerFile.data: Invalid value: ", m.MSG_ANSWER_FILE_KEYS],
    ),
    (
        "answer-file-name-dot-dot",
        "web",
        _answer_data({"..": "<unattend/>"}),
        ["spec.setup.answerFile.data: Invalid value: ", m.MSG_ANSWER_FILE_KEYS],
    ),
    (
        "answer-file-over-1-mib",
        "web",
        _answer_data({"unattend.xml": "x" * m.MAX_ANSWER_FILE_CHARACTERS}),
        ["spec.setup.answerFile.data: Invalid value: ", m.MSG_ANSWER_FILE_SIZE],
    ),
    # --- int32 fields of the Deployment ---
    # Instance names (<role>_IN_<n>) must fit a label value: at most 10000 instances and surge.
    (
        "instances-over-the-name-bound",
        "web",
        _set(instances=10001),
        ["spec.instances: Invalid value: 10001", "less than or equal to 10000"],
    ),
    (
        "max-surge-over-the-name-bound",
        "web",
        _set(upgrade={"maxUnavailable": 1, "maxSurge": 10001}),
        ["spec.upgrade.maxSurge: Invalid value: 10001", "less than or equal to 10000"],
    ),
    (
        "run-as-user-over-int32",
        "web",
        _set(securityContext={"runAsUser": INT32_OVER}),
        ["spec.securityContext.runAsUser: Invalid value: 2147483648", "less than or equal to 2147483647"],
    ),
    (
        "fs-group-over-int32",
        "web",
        _set(securityContext={"fsGroup": INT32_OVER}),
        ["spec.securityContext.fsGroup: Invalid value: 2147483648", "less than or equal to 2147483647"],
    ),
    (
        "run-as-group-negative",
        "web",
        _set(securityContext={"runAsGroup": -1}),
        ["spec.securityContext.runAsGroup: Invalid value: -1", "greater than or equal to 0"],
    ),
    # --- other fields ---
    (
        "peer-group-not-a-label-value",
        "web",
        lambda s: s["endpoints"].update(peerGroup="team a"),
        ['spec.endpoints.peerGroup: Invalid value: "team a"', "should match"],
    ),
    (
        "http-check-port-0",
        "web",
        lambda s: s["autoStart"][1]["httpGet"].update(port=0),
        ["spec.autoStart[1].httpGet.port: Invalid value: 0", "greater than or equal to 1"],
    ),
    (
        "unknown-protocol",
        "web",
        lambda s: s["endpoints"]["internal"][0].update(protocol="ICMP"),
        ['spec.endpoints.internal[0].protocol: Unsupported value: "ICMP"'],
    ),
    (
        "drain-seconds-over-300",
        "web",
        lambda s: s.update(upgrade={"drainSeconds": 301}),
        ["spec.upgrade.drainSeconds: Invalid value: 301", "less than or equal to 300"],
    ),
]

# Unknown fields never reach a CEL rule (the API server prunes them before validating), so only strict
# field validation (kubectl's default) refuses them: a 400 naming each field.
UNKNOWN_FIELDS: list[tuple[str, Mutation, str]] = [
    ("spec-replicas", _set(replicas=3), "spec.replicas"),
    ("ephemeral-disk-size", lambda s: s["ephemeralDisk"].update(size="1Gi"), "spec.ephemeralDisk.size"),
    ("check-exec", lambda s: s["autoStart"][0].update(exec={"command": ["true"]}), "spec.autoStart[0].exec"),
    (
        "field-ref-extra",
        _env_from({"fieldRef": {"fieldPath": "metadata.name", "extra": True}}),
        "spec.env[0].valueFrom.fieldRef.extra",
    ),
    ("resources-claims", _set(resources={"claims": []}), "spec.resources.claims"),
]


def _dry_run_create(kube: Kube, namespace: str, manifest: dict[str, Any], **options: str) -> dict[str, Any]:
    return dict(
        kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest, dry_run="All", **options
        )
    )


def _refusal(kube: Kube, namespace: str, manifest: dict[str, Any], **options: str) -> tuple[int, str]:
    """Dry-run create `manifest`; return the API server's status code and message (fails if accepted)."""
    try:
        _dry_run_create(kube, namespace, manifest, **options)
    except ApiException as e:
        return int(e.status), str(json.loads(e.body)["message"])
    pytest.fail(f"the API server accepted an invalid VMRole: {manifest['spec']}")


def test_the_invalid_cases_are_many_and_distinct() -> None:
    ids = [case[0] for case in INVALID]
    assert len(ids) >= MIN_INVALID_CASES
    assert len(set(ids)) == len(ids)
    assert len({case[0] for case in UNKNOWN_FIELDS}) == len(UNKNOWN_FIELDS) >= 5


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


@pytest.mark.parametrize(
    ("name", "mutate"), [pytest.param(name, mutate, id=id_) for id_, name, mutate, _ in INVALID]
)
def test_parse_role_refuses_what_the_api_server_refuses(name: str, mutate: Mutation) -> None:
    """The operator's own parsing agrees on every case (the property tests cover generated ones)."""
    manifest = role_manifest(name)
    mutate(manifest["spec"])
    with pytest.raises(ValueError, match="invalid VMRole"):
        m.parse_role(manifest)


@pytest.mark.parametrize(
    ("mutate", "field"), [pytest.param(mutate, field, id=id_) for id_, mutate, field in UNKNOWN_FIELDS]
)
def test_unknown_field_is_refused_by_strict_validation(
    kube: Kube, namespace: str, mutate: Mutation, field: str
) -> None:
    manifest = role_manifest("web")
    mutate(manifest["spec"])

    status, message = _refusal(kube, namespace, manifest, field_validation="Strict")

    assert status == 400, message
    assert f'strict decoding error: unknown field "{field}"' in message


def test_unknown_field_is_dropped_without_strict_validation(kube: Kube, namespace: str) -> None:
    """What a client that does not ask for strict validation gets: the field is pruned, never stored."""
    manifest = role_manifest("web")
    manifest["spec"]["replicas"] = 3
    manifest["spec"]["ephemeralDisk"]["size"] = "1Gi"

    created = _dry_run_create(kube, namespace, manifest, field_validation="Ignore")

    assert "replicas" not in created["spec"]
    assert "size" not in created["spec"]["ephemeralDisk"]


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
