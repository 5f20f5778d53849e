"""parse_role: defaults, the SEMANTICS.md example, and every invalid case refused with its field named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.role_bodies import DIGEST, example_body, minimal_body
from vmrole_operator import constants as c
from vmrole_operator import models
from vmrole_operator.models import VMRole, is_qualified_name, parse_role
from vmrole_operator.quantity import quantity_value


def test_example_parses() -> None:
    role = parse_role(example_body())
    assert isinstance(role, VMRole)
    assert role.name == "web"
    assert role.namespace == "default"
    assert role.spec.instances == 3
    assert role.spec.ephemeralDisk.mountPaths == ["/scratch", "/tmp"]
    assert role.spec.setup is not None
    assert role.spec.setup.answerFile is not None
    assert role.spec.setup.answerFile.data == {"unattend.xml": "<unattend/>"}
    assert [check.port for check in role.spec.autoStart] == [8080, 8080]
    assert role.spec.autoStart[1].httpGet is not None
    assert role.spec.autoStart[1].httpGet.scheme == "HTTP"
    assert role.spec.endpoints.input[0].effective_target_port == 8080
    assert role.spec.endpoints.internal[0].effective_target_port == 7000
    assert role.status is not None
    assert role.status.instances[0].state == "ReadyRole"


def test_defaults() -> None:
    spec = parse_role(minimal_body()).spec
    assert spec.instances == 1
    assert spec.command is None
    assert spec.args is None
    assert spec.env is None
    assert spec.ephemeralDisk.mountPaths == ["/tmp"]
    assert spec.ephemeralDisk.sizeLimit == "1Gi"
    assert spec.setup is None
    assert spec.autoStart == []
    assert spec.autoStartTimeoutSeconds == 300
    assert spec.endpoints.input == []
    assert spec.endpoints.internal == []
    assert spec.endpoints.serviceType == "ClusterIP"
    assert spec.endpoints.peerGroup is None
    assert (spec.upgrade.maxUnavailable, spec.upgrade.maxSurge, spec.upgrade.paused) == (1, 0, False)
    assert (spec.healing.enabled, spec.healing.maxPerHour) == (True, 6)
    assert spec.resources is None
    assert (spec.securityContext.runAsUser, spec.securityContext.runAsGroup) == (65532, 65532)
    assert spec.securityContext.fsGroup is None
    assert spec.nodeSelector is None


def test_nested_defaults() -> None:
    spec = parse_role(
        minimal_body(
            setup={"command": ["setup"], "answerFile": {"configMapName": "answers"}},
            autoStart=[{"name": "api", "httpGet": {"port": 8080}}],
            endpoints={"input": [{"name": "http", "port": 8080}]},
        )
    ).spec
    assert spec.setup is not None
    assert spec.setup.answerFile is not None
    assert spec.setup.answerFile.mountPath == "/etc/vmrole/answer"
    assert spec.autoStart[0].httpGet is not None
    assert (spec.autoStart[0].httpGet.path, spec.autoStart[0].httpGet.scheme) == ("/", "HTTP")
    assert spec.endpoints.input[0].protocol == "TCP"
    assert spec.endpoints.input[0].targetPort is None


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "busybox:1.36.1",
        "localhost/vmrole-test/web:1",
        "localhost:5000/team/app",
        "Registry.Example.com/app",
        "myregistry:5000/app:1",
        "registry.example.com:443/a/b_c/d-e:v1.2.3-rc.1",
        f"localhost/vmrole-test/web@sha256:{DIGEST}",
        f"localhost/vmrole-test/web:1@sha256:{DIGEST}",
    ],
)
def test_valid_images(image: str) -> None:
    assert parse_role(minimal_body(image=image)).spec.image == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "web:",
        "Web/app",
        "web@sha256:abc",
        f"web@sha512:{DIGEST}",
        "web:tag with space",
        "-web",
        "web//x",
        "host:5000:6000/x",
    ],
)
def test_invalid_images(image: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.image"):
        parse_role(minimal_body(image=image))


# (spec change, field the error must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing image", {"image": None}, "spec.image"),
    ("negative instances", {"instances": -1}, "spec.instances"),
    ("unknown field", {"replicas": 3}, "spec.replicas"),
    ("port 0", {"endpoints": {"input": [{"name": "a", "port": 0}]}}, "spec.endpoints.input[0].port"),
    (
        "port too big",
        {"endpoints": {"internal": [{"name": "a", "port": 65536}]}},
        "spec.endpoints.internal[0].port",
    ),
    ("named port", {"endpoints": {"input": [{"name": "a", "port": 80, "targetPort": "http"}]}}, "targetPort"),
    ("bad protocol", {"endpoints": {"input": [{"name": "a", "port": 80, "protocol": "ICMP"}]}}, "protocol"),
    ("bad service type", {"endpoints": {"serviceType": "ExternalName"}}, "spec.endpoints.serviceType"),
    ("bad peer group", {"endpoints": {"peerGroup": "a b"}}, "spec.endpoints.peerGroup"),
    (
        "answer file without source",
        {"setup": {"command": ["s"], "answerFile": {"mountPath": "/etc/a"}}},
        "spec.setup.answerFile",
    ),
    (
        "answer file with two sources",
        {"setup": {"command": ["s"], "answerFile": {"data": {"a": "b"}, "secretName": "s"}}},
        "spec.setup.answerFile",
    ),
    ("setup without command", {"setup": {"args": ["x"]}}, "spec.setup.command"),
    ("setup with empty command", {"setup": {"command": []}}, "spec.setup.command"),
    ("check without kind", {"autoStart": [{"name": "a"}]}, "spec.autoStart"),
    (
        "check with two kinds",
        {"autoStart": [{"name": "a", "tcpSocket": {"port": 1}, "httpGet": {"port": 1}}]},
        "spec.autoStart",
    ),
    ("bad http scheme", {"autoStart": [{"name": "a", "httpGet": {"port": 1, "scheme": "FTP"}}]}, "scheme"),
    ("relative http path", {"autoStart": [{"name": "a", "httpGet": {"port": 1, "path": "x"}}]}, "path"),
    (
        "duplicate check names",
        {"autoStart": [{"name": "a", "tcpSocket": {"port": 1}}, {"name": "a", "tcpSocket": {"port": 2}}]},
        "spec.autoStart",
    ),
    (
        "duplicate input names",
        {"endpoints": {"input": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}},
        "spec.endpoints.input",
    ),
    (
        "duplicate internal names",
        {"endpoints": {"internal": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}},
        "spec.endpoints.internal",
    ),
    (
        "duplicate input ports",
        {"endpoints": {"input": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}},
        "spec.endpoints.input",
    ),
    (
        "duplicate internal ports",
        {
            "endpoints": {
                "internal": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "TCP"}]
            }
        },
        "spec.endpoints.internal",
    ),
    (
        "input target not checked",
        {
            "autoStart": [{"name": "http", "tcpSocket": {"port": 8080}}],
            "endpoints": {"input": [{"name": "http", "port": 80, "targetPort": 9090}]},
        },
        "spec.endpoints.input",
    ),
    (
        "input port (no targetPort) not checked",
        {
            "autoStart": [{"name": "http", "httpGet": {"port": 8080}}],
            "endpoints": {"input": [{"name": "http", "port": 80}]},
        },
        "spec.endpoints.input",
    ),
    ("maxUnavailable and maxSurge 0", {"upgrade": {"maxUnavailable": 0, "maxSurge": 0}}, "spec.upgrade"),
    ("maxUnavailable 0 by default surge", {"upgrade": {"maxUnavailable": 0}}, "spec.upgrade"),
    ("negative maxSurge", {"upgrade": {"maxSurge": -1}}, "spec.upgrade.maxSurge"),
    (
        "answer file over the ephemeral disk",
        {
            "ephemeralDisk": {"mountPaths": ["/scratch"]},
            "setup": {"command": ["s"], "answerFile": {"mountPath": "/scratch", "secretName": "s"}},
        },
        "spec.setup.answerFile.mountPath",
    ),
    ("relative mount path", {"ephemeralDisk": {"mountPaths": ["tmp"]}}, "spec.ephemeralDisk.mountPaths[0]"),
    ("root mount path", {"ephemeralDisk": {"mountPaths": ["/"]}}, "spec.ephemeralDisk.mountPaths[0]"),
    (
        "dot-dot mount path",
        {"ephemeralDisk": {"mountPaths": ["/a/../b"]}},
        "spec.ephemeralDisk.mountPaths[0]",
    ),
    ("trailing slash", {"ephemeralDisk": {"mountPaths": ["/a/"]}}, "spec.ephemeralDisk.mountPaths[0]"),
    (
        "duplicate mount paths",
        {"ephemeralDisk": {"mountPaths": ["/a", "/a"]}},
        "spec.ephemeralDisk.mountPaths",
    ),
    ("too many mount paths", {"ephemeralDisk": {"mountPaths": [f"/m{i}" for i in range(17)]}}, "mountPaths"),
    ("bad size limit", {"ephemeralDisk": {"sizeLimit": "lots"}}, "spec.ephemeralDisk.sizeLimit"),
    (
        "too many checks",
        {"autoStart": [{"name": f"c{i}", "tcpSocket": {"port": 1}} for i in range(17)]},
        "autoStart",
    ),
    ("timeout 0", {"autoStartTimeoutSeconds": 0}, "spec.autoStartTimeoutSeconds"),
    ("timeout over a day", {"autoStartTimeoutSeconds": 86401}, "spec.autoStartTimeoutSeconds"),
    ("root user", {"securityContext": {"runAsUser": 0}}, "spec.securityContext.runAsUser"),
    ("bad quantity", {"resources": {"limits": {"memory": "a lot"}}}, "spec.resources.limits.memory"),
    ("unknown resources field", {"resources": {"claims": []}}, "spec.resources.claims"),
    ("env value and valueFrom", {"env": [{"name": "A", "value": "1", "valueFrom": {}}]}, "spec.env"),
    ("duplicate env", {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "spec.env"),
    ("bad env name", {"env": [{"name": "A=B", "value": "1"}]}, "spec.env[0].name"),
    (
        "configMap name",
        {"setup": {"command": ["s"], "answerFile": {"configMapName": "Bad_Name"}}},
        "configMapName",
    ),
    # --- what passed the schema before and failed only when the Deployment was made ---
    ("quantity exponent overflows", {"ephemeralDisk": {"sizeLimit": "1e99999999999999999999"}}, "sizeLimit"),
    ("quantity 3-digit exponent", {"resources": {"limits": {"memory": "1e100"}}}, "limits.memory"),
    ("signed quantity", {"resources": {"requests": {"cpu": "-1"}}}, "spec.resources.requests.cpu"),
    ("unknown resource name", {"resources": {"requests": {"gpu": "1"}}}, "spec.resources.requests: resource"),
    ("resource name case", {"resources": {"limits": {"CPU": "1"}}}, "spec.resources.limits: resource"),
    (
        "cpu request over limit",
        {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}},
        "spec.resources.requests: every request",
    ),
    (
        "memory request 1Gi over limit 1G",
        {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1G"}}},
        "spec.resources.requests: every request",
    ),
    ("node selector key with a space", {"nodeSelector": {"a b": "x"}}, "spec.nodeSelector: every key"),
    ("node selector key uppercase prefix", {"nodeSelector": {"Example.com/zone": "x"}}, "spec.nodeSelector"),
    ("node selector key empty prefix", {"nodeSelector": {"/zone": "x"}}, "spec.nodeSelector"),
    ("node selector name of 64", {"nodeSelector": {"z" * 64: "x"}}, "spec.nodeSelector"),
    ("node selector prefix of 254", {"nodeSelector": {"a" * 254 + "/zone": "x"}}, "spec.nodeSelector"),
    ("node selector two slashes", {"nodeSelector": {"a/b/c": "x"}}, "spec.nodeSelector"),
    ("node selector value", {"nodeSelector": {"zone": "a b"}}, "spec.nodeSelector.zone"),
    ("node selector value of 64", {"nodeSelector": {"zone": "v" * 64}}, "spec.nodeSelector.zone"),
    (
        "tolerationSeconds with NoSchedule",
        {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
        "spec.tolerations: tolerationSeconds requires effect NoExecute",
    ),
    (
        "tolerationSeconds without effect",
        {"tolerations": [{"key": "k", "tolerationSeconds": 5}]},
        "spec.tolerations: tolerationSeconds",
    ),
    ("keyless Equal toleration", {"tolerations": [{"value": "v"}]}, "spec.tolerations: operator must be"),
    (
        "Exists toleration with a value",
        {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
        "spec.tolerations: value must be empty",
    ),
    ("toleration key", {"tolerations": [{"key": "a b", "operator": "Exists"}]}, "spec.tolerations: key"),
    ("toleration empty key", {"tolerations": [{"key": "", "operator": "Exists"}]}, "spec.tolerations: key"),
    ("toleration value", {"tolerations": [{"key": "k", "value": "a b"}]}, "spec.tolerations[0].value"),
    (
        "configMapKeyRef without key",
        {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm"}}}]},
        "spec.env[0].valueFrom.configMapKeyRef.key",
    ),
    (
        "secretKeyRef without key",
        {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
        "spec.env[0].valueFrom.secretKeyRef.key",
    ),
    (
        "secretKeyRef without name",
        {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"}}}]},
        "spec.env[0].valueFrom.secretKeyRef.name",
    ),
    (
        "key ref key '..'",
        {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": ".."}}}]},
        "spec.env[0].valueFrom.configMapKeyRef.key",
    ),
    ("empty valueFrom", {"env": [{"name": "A", "valueFrom": {}}]}, "spec.env.valueFrom: exactly one"),
    (
        "valueFrom with two sources",
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {
                        "fieldRef": {"fieldPath": "metadata.name"},
                        "secretKeyRef": {"name": "s", "key": "k"},
                    },
                }
            ]
        },
        "spec.env.valueFrom: exactly one",
    ),
    (
        "unsupported fieldPath",
        {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]},
        "spec.env[0].valueFrom.fieldRef.fieldPath",
    ),
    (
        "unknown field in fieldRef",
        {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "x": 1}}}]},
        "spec.env[0].valueFrom.fieldRef.x",
    ),
    (
        "resourceFieldRef of a gpu",
        {"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]},
        "spec.env[0].valueFrom.resourceFieldRef.resource",
    ),
    (
        "cpu divisor 1Mi",
        {
            "env": [
                {"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1Mi"}}}
            ]
        },
        "spec.env.valueFrom.resourceFieldRef.divisor",
    ),
    (
        "memory divisor 1m",
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1m"}},
                }
            ]
        },
        "spec.env.valueFrom.resourceFieldRef.divisor",
    ),
    (
        "answer file name with a slash",
        {"setup": {"command": ["s"], "answerFile": {"data": {"a/b": "x"}}}},
        "spec.setup.answerFile.data: every key",
    ),
    (
        "answer file name '..x'",
        {"setup": {"command": ["s"], "answerFile": {"data": {"..x": "x"}}}},
        "spec.setup.answerFile.data: every key",
    ),
    (
        "answer file name ending in a newline",
        {"setup": {"command": ["s"], "answerFile": {"data": {"a\n": "x"}}}},
        "spec.setup.answerFile.data: every key",
    ),
    ("node selector key ending in a newline", {"nodeSelector": {"zone\n": "x"}}, "spec.nodeSelector"),
    (
        "answer file too large",
        {"setup": {"command": ["s"], "answerFile": {"data": {"a": "x" * models.MAX_ANSWER_FILE_CHARACTERS}}}},
        "spec.setup.answerFile.data: file names and contents",
    ),
    ("instances over int32", {"instances": 2**31}, "spec.instances"),
    ("maxSurge over int32", {"upgrade": {"maxSurge": 2**31}}, "spec.upgrade.maxSurge"),
    ("runAsUser over int32", {"securityContext": {"runAsUser": 2**31}}, "spec.securityContext.runAsUser"),
    ("fsGroup over int32", {"securityContext": {"fsGroup": 2**31}}, "spec.securityContext.fsGroup"),
]


@pytest.mark.parametrize(
    ("spec_change", "field"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_spec_is_refused_naming_the_field(spec_change: dict[str, Any], field: str) -> None:
    body = minimal_body(**spec_change)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    with pytest.raises(ValueError, match="invalid VMRole") as excinfo:
        parse_role(body)
    assert field in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 55, "metadata.name: must be at most 54 characters"),
        ("1web", "metadata.name: must be a DNS-1035 label"),
        ("web\n", "metadata.name: must be a DNS-1035 label"),
        ("web.example", "metadata.name: must be a DNS-1035 label"),
    ],
)
def test_invalid_names(name: str, message: str) -> None:
    body = minimal_body()
    body["metadata"]["name"] = name
    with pytest.raises(ValueError, match=message):
        parse_role(body)


def test_longest_name_is_accepted() -> None:
    body = minimal_body()
    body["metadata"]["name"] = "a" * c.MAX_ROLE_NAME_LENGTH
    assert len(parse_role(body).name + c.INTERNAL_SERVICE_SUFFIX) == 63


def test_wrong_kind_is_refused() -> None:
    body = minimal_body()
    body["kind"] = "Deployment"
    with pytest.raises(ValueError, match="kind"):
        parse_role(body)


def test_valid_edge_cases() -> None:
    spec = parse_role(
        minimal_body(
            instances=0,
            upgrade={"maxUnavailable": 0, "maxSurge": 1},
            # Same port on TCP and UDP is two endpoints, as in a Service.
            endpoints={
                "internal": [
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "dns-udp", "port": 53, "protocol": "UDP"},
                ]
            },
            # No autoStart: any input target port is fine.
            ephemeralDisk={"mountPaths": ["/var/cache/app", "/.hidden", "/tmp"], "sizeLimit": "1.5Gi"},
            resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1e9"}},
            env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            nodeSelector={"kubernetes.io/os": "linux"},
        )
    ).spec
    assert spec.instances == 0
    assert spec.env is not None
    assert spec.env[0].valueFrom is not None
    assert spec.env[0].valueFrom.model_dump(exclude_none=True) == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_status_is_parsed_leniently() -> None:
    # Status is the operator's own output; fields a newer version adds must not break parsing.
    body = example_body()
    body["status"]["somethingNew"] = {"x": 1}
    body["status"]["instances"][0]["extra"] = True
    assert parse_role(body).status is not None


def test_parse_does_not_mutate_the_body() -> None:
    body = example_body()
    before = copy.deepcopy(body)
    parse_role(body)
    assert body == before


def test_a_status_an_older_operator_wrote_never_makes_the_spec_unusable() -> None:
    body = example_body()
    del body["status"]["instances"][0]["pod"]  # before named instances, entries had no pod
    role = parse_role(body)
    assert role.status is None
    assert role.spec.instances == 3


def test_settings_keys_are_file_names() -> None:
    assert parse_role(minimal_body(settings={"db.url": "x", "greeting": "hi"})).spec.settings == {
        "db.url": "x",
        "greeting": "hi",
    }
    for key in ("..", ".", "a/b", "", "k" * 254):
        with pytest.raises(ValueError, match=r"spec\.settings"):
            parse_role(minimal_body(settings={key: "x"}))
    assert parse_role(minimal_body()).spec.settingsChange == "InPlace"


def test_pod_shaped_fields_at_their_limits_parse() -> None:
    spec = parse_role(
        minimal_body(
            nodeSelector={"a" * 253 + "/" + "z" * 63: "", "topology.kubernetes.io/zone": "z-1"},
            tolerations=[
                {"operator": "Exists"},
                {"key": "k", "operator": "Exists", "value": ""},
                {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 60},
            ],
            resources={"requests": {"cpu": "1", "memory": "1G"}, "limits": {"cpu": "1000m", "memory": "1G"}},
            env=[
                {"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": ".b", "optional": True}}},
                {"name": "C", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIPs"}}},
            ],
            setup={"command": ["s"], "answerFile": {"data": {"a..b": "x" * 1000}}},
        )
    ).spec
    assert spec.tolerations is not None
    assert spec.tolerations[0].key is None


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ("1G", "1Gi"),
        ("999m", "1"),
        ("1e2", "101"),
        ("0.1Ki", "102.5"),
        ("1E", "2Ei"),
        ("1e-10", "2n"),  # 1e-10 rounds up to 1n, still below 2n
    ],
)
def test_quantity_values_order_as_the_api_server_does(smaller: str, larger: str) -> None:
    assert quantity_value(smaller) < quantity_value(larger)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1k", "1000"),
        ("1e3", "1k"),
        ("1E3", "1k"),
        (".5", "500m"),
        ("1.", "1"),
        ("0.1Ki", "102.4"),
        ("0", "0.0"),
        # Rounded up to a whole nano, like resource.ParseQuantity.
        ("1.0000000001", "1.000000001"),
        # A binary-suffixed value is capped at the largest int64; a decimal one is not.
        ("100Ei", "8Ei"),
        ("9223372036854775807", "8Ei"),
    ],
)
def test_equal_quantities(a: str, b: str) -> None:
    assert quantity_value(a) == quantity_value(b)


def test_capped_binary_request_is_within_a_larger_decimal_limit() -> None:
    # 100Ei really is larger than 10E, but the API server (and so the Pod API) compares 2**63 - 1.
    parse_role(minimal_body(resources={"requests": {"memory": "100Ei"}, "limits": {"memory": "10E"}}))


@pytest.mark.parametrize("text", ["", "1 ", "1\n", "+1", "-1", "1e", "1e100", "1K", "Mi", "1.2.3", "1Kii"])
def test_not_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        quantity_value(text)


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("zone", True),
        ("topology.kubernetes.io/zone", True),
        ("a" * 253 + "/b", True),
        ("a" * 254 + "/b", False),
        ("b" * 63, True),
        ("b" * 64, False),
        ("x/" + "b" * 63, True),
        ("x/" + "b" * 64, False),
        ("Example.com/zone", False),
        ("example.com/Zone_1.a", True),
        ("-zone", False),
        ("zone-", False),
        ("/zone", False),
        ("example.com/", False),
        ("a/b/c", False),
        ("", False),
        ("zone\n", False),
    ],
)
def test_qualified_names(key: str, valid: bool) -> None:
    assert is_qualified_name(key) is valid
