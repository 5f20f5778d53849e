"""The generated CRD: committed file in sync, structural schema, and every admission rule present."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrole_operator import constants as c
from vmrole_operator import crd, models
from vmrole_operator.crd import CRD_PATH, build_crd, main, render_crd, structural


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (properties by name, items as [])."""
    assert isinstance(node, dict), path
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    built: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return built


def node_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(walk(schema))[path]


def rules_at(schema: dict[str, Any], path: str) -> dict[str, dict[str, str]]:
    return {rule["message"]: rule for rule in node_at(schema, path).get("x-kubernetes-validations", [])}


# --- the committed file ---


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == render_crd(), (
        f"{CRD_PATH} is stale: run `{crd.REGENERATE_COMMAND}`"
    )


def test_committed_crd_parses_to_build_crd() -> None:
    assert yaml.safe_load(CRD_PATH.read_text(encoding="utf-8")) == build_crd()


def test_render_has_a_generated_header_and_is_stable() -> None:
    text = render_crd()
    assert text.startswith("# Generated")
    assert crd.REGENERATE_COMMAND in text.splitlines()[0]
    assert render_crd() == text


def test_main_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds" / "x.yaml"
    assert main(["--check", "--output", str(out)]) == 1  # missing counts as stale
    assert main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_crd()
    assert main(["--check", "--output", str(out)]) == 0
    out.write_text(render_crd().replace("maxItems: 16", "maxItems: 17"), encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "out of date" in err


# --- CRD object ---


def test_names_scope_and_version() -> None:
    spec = build_crd()["spec"]
    assert build_crd()["apiVersion"] == "apiextensions.k8s.io/v1"
    assert build_crd()["metadata"]["name"] == c.CRD_NAME == "vmroles.vmrole.dev"
    assert spec["group"] == "vmrole.dev"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["listKind"], names["plural"], names["singular"]) == (
        "VMRole",
        "VMRoleList",
        "vmroles",
        "vmrole",
    )
    assert names["shortNames"] == ["vmr"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_subresources() -> None:
    [version] = build_crd()["spec"]["versions"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.instances",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_printer_columns() -> None:
    [version] = build_crd()["spec"]["versions"]
    columns = [
        (col["name"], col["type"], col["jsonPath"], col.get("priority", 0))
        for col in version["additionalPrinterColumns"]
    ]
    assert columns == [
        ("Image", "string", ".spec.image", 0),
        ("Instances", "integer", ".spec.instances", 0),
        ("Ready", "integer", ".status.readyReplicas", 0),
        ("Available", "string", '.status.conditions[?(@.type=="Available")].status', 0),
        ("Age", "date", ".metadata.creationTimestamp", 0),
        ("Pinned", "string", ".status.image", 1),  # -o wide
    ]


# --- structural schema ---

FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const", "nullable", "uniqueItems"}


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        assert not FORBIDDEN & set(node), f"{path}: {FORBIDDEN & set(node)}"
        preserve = node.get("x-kubernetes-preserve-unknown-fields")
        assert preserve in (None, True), f"{path}: preserve-unknown-fields must be true or unset"
        assert "type" in node or preserve, f"{path}: no type"
        if "properties" in node:
            assert node["type"] == "object", path
        if "additionalProperties" in node:
            assert node["type"] == "object", path
            assert "properties" not in node, path
            assert node["additionalProperties"]["type"] == "string", f"{path}: maps must be string maps"
        if node.get("type") == "array":
            assert "items" in node, path
        if "default" in node:
            assert node["default"] is not None, path


def test_root_schema(schema: dict[str, Any]) -> None:
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]
    assert schema["properties"]["spec"]["required"] == ["image"]


def test_every_spec_field_is_described(schema: dict[str, Any]) -> None:
    for path, node in walk(schema["properties"]["spec"], ".spec"):
        if path.endswith(("[]", "{}")) and "properties" not in node:
            continue  # scalar list items and map values are described by their list/map
        assert node.get("description"), f"{path} has no description (kubectl explain would be empty)"


def test_every_spec_list_is_bounded(schema: dict[str, Any]) -> None:
    # CEL cost estimation multiplies by list sizes; unbounded lists make the API server refuse rules.
    for path, node in walk(schema["properties"]["spec"], ".spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_spec_has_no_free_form_objects(schema: dict[str, Any]) -> None:
    # A preserved unknown field is one the API server checks nothing about, and CEL cannot see it.
    for path, node in walk(schema["properties"]["spec"], ".spec"):
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
    assert set(node_at(schema, ".spec.env[].valueFrom")["properties"]) == {
        "fieldRef",
        "resourceFieldRef",
        "configMapKeyRef",
        "secretKeyRef",
    }


def test_every_spec_map_is_bounded(schema: dict[str, Any]) -> None:
    # Like lists: a CEL rule that walks a map costs as much as the map may be large.
    for path, node in walk(schema["properties"]["spec"], ".spec"):
        if "additionalProperties" in node:
            assert "maxProperties" in node, path


def test_integer_bounds_survive_the_float64_reading(schema: dict[str, Any]) -> None:
    # The API server reads maximum as a float64: 2**63 - 1 would round up, overflow and refuse everything.
    for path, node in walk(schema):
        if "maximum" in node:
            assert node["maximum"] <= models.MAX_INT32, path
        if path == ".spec.securityContext.runAsUser":
            assert node["maximum"] == models.MAX_INT32, path
        if path in {".spec.instances", ".spec.upgrade.maxSurge"}:
            # The longest role name's instance label must stay within 63 characters.
            assert node["maximum"] == models.MAX_INSTANCES, path
            longest = f"{'w' * 54}_IN_{node['maximum'] * 3}"
            assert len(longest) <= 63, longest


def test_optional_fields_are_not_nullable_unions(schema: dict[str, Any]) -> None:
    setup = node_at(schema, ".spec.setup")
    assert setup["type"] == "object"
    assert setup["required"] == ["command"]
    assert "default" not in setup  # optional and absent by default, never null
    assert node_at(schema, ".spec.endpoints.input[].targetPort") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": "Port the instance listens on; defaults to port.",
    }


def test_defaults(schema: dict[str, Any]) -> None:
    assert node_at(schema, ".spec.instances")["default"] == 1
    assert node_at(schema, ".spec.instances")["minimum"] == 0
    assert node_at(schema, ".spec.autoStartTimeoutSeconds")["default"] == 300
    assert node_at(schema, ".spec.ephemeralDisk.mountPaths")["default"] == ["/tmp"]
    assert node_at(schema, ".spec.ephemeralDisk.sizeLimit")["default"] == "1Gi"
    assert node_at(schema, ".spec.setup.answerFile.mountPath")["default"] == "/etc/vmrole/answer"
    assert node_at(schema, ".spec.autoStart[].httpGet.path")["default"] == "/"
    assert node_at(schema, ".spec.autoStart[].httpGet.scheme")["enum"] == ["HTTP", "HTTPS"]
    assert node_at(schema, ".spec.endpoints.input[].protocol")["enum"] == ["TCP", "UDP", "SCTP"]
    # A one-value Literal (pydantic's `const`) is an enum too, or the API server admits any string.
    assert node_at(schema, ".spec.env[].valueFrom.fieldRef.apiVersion")["enum"] == ["v1"]
    assert node_at(schema, ".spec.endpoints.serviceType")["default"] == "ClusterIP"
    assert node_at(schema, ".spec.securityContext.runAsUser")["default"] == 65532


def test_nested_objects_default_so_inner_defaults_apply(schema: dict[str, Any]) -> None:
    # Parent defaults spell the inner defaults out (the API server validates a default against the
    # CEL rules without applying nested defaults, so `{}` would not do for spec.upgrade).
    expected = {
        "ephemeralDisk": {"mountPaths": ["/tmp"], "sizeLimit": "1Gi"},
        "endpoints": {"serviceType": "ClusterIP"},
        "upgrade": {"maxUnavailable": 1, "maxSurge": 0, "paused": False, "drainSeconds": 5},
        "healing": {"enabled": True, "maxPerHour": 6, "restartThreshold": 3, "nodeLossSeconds": 30},
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532},
    }
    for name, default in expected.items():
        assert node_at(schema, f".spec.{name}")["default"] == default, name
        # The same values the API server would fill in field by field.
        inner = node_at(schema, f".spec.{name}")["properties"]
        assert {k: v["default"] for k, v in inner.items() if "default" in v} == default


def test_status_schema(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]
    assert status["type"] == "object"
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert set(status["properties"]) == {
        "observedGeneration",
        "image",
        "specImage",
        "replicas",
        "readyReplicas",
        "selector",
        "instances",
        "conditions",
        "lastReimage",
        "settings",
        "heals",
        "recentHeals",
    }
    for path, node in walk(status, ".status"):
        assert "default" not in node, f"{path}: status must not get server-side defaults"
    assert node_at(schema, ".status.conditions[].status")["enum"] == ["True", "False", "Unknown"]
    assert node_at(schema, ".status.conditions[].lastTransitionTime")["format"] == "date-time"
    assert node_at(schema, ".status.conditions")["x-kubernetes-list-map-keys"] == ["type"]
    assert node_at(schema, ".status.instances")["x-kubernetes-list-map-keys"] == ["pod"]
    assert set(node_at(schema, ".status.instances[]")["properties"]) == {
        "name",
        "pod",
        "state",
        "ready",
        "restarts",
        "podIP",
        "node",
        "since",
        "message",
    }


# --- admission rules ---


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        (".spec.autoStart", ["name"]),
        (".spec.endpoints.input", ["name"]),
        (".spec.endpoints.internal", ["name"]),
    ],
)
def test_names_are_unique_by_list_map(schema: dict[str, Any], path: str, keys: list[str]) -> None:
    node = node_at(schema, path)
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == keys
    assert "name" in node["items"]["required"]  # map keys must be required


def test_mount_paths_are_a_set(schema: dict[str, Any]) -> None:
    node = node_at(schema, ".spec.ephemeralDisk.mountPaths")
    assert node["x-kubernetes-list-type"] == "set"
    assert node["maxItems"] == 16
    assert node["items"]["pattern"] == models.ABSOLUTE_PATH_PATTERN


@pytest.mark.parametrize(
    ("path", "message", "rule_part"),
    [
        (".spec.setup.answerFile", models.MSG_ANSWER_FILE_ONE_SOURCE, "has(self.configMapName)"),
        (".spec.autoStart[]", models.MSG_CHECK_ONE_KIND, "has(self.tcpSocket) != has(self.httpGet)"),
        (".spec.endpoints.input", models.MSG_INPUT_PORTS_UNIQUE, "f.port == e.port"),
        (".spec.endpoints.internal", models.MSG_INTERNAL_PORTS_UNIQUE, "f.port == e.port"),
        (".spec", models.MSG_INPUT_TARGET_CHECKED, "self.endpoints.input.all("),
        (".spec.upgrade", models.MSG_UPGRADE_NOT_BOTH_ZERO, "self.maxUnavailable > 0 || self.maxSurge > 0"),
        (".spec", models.MSG_ANSWER_MOUNT_CLASH, "in self.ephemeralDisk.mountPaths"),
        ("", models.MSG_NAME_TOO_LONG, "size(self.metadata.name) <= 54"),
        ("", models.MSG_NAME_DNS_1035, "self.metadata.name.matches("),
        (".spec.env[]", models.MSG_ENV_VALUE_XOR_FROM, "has(self.valueFrom)"),
        (".spec.env[].valueFrom", models.MSG_VALUE_FROM_ONE_SOURCE, "has(self.secretKeyRef)"),
        (".spec.env[].valueFrom.resourceFieldRef", models.MSG_DIVISOR, "self.resource.endsWith('.cpu')"),
        (".spec.setup.answerFile.data", models.MSG_ANSWER_FILE_KEYS, "k.matches("),
        (".spec.setup.answerFile.data", models.MSG_ANSWER_FILE_SIZE, ".sum() <= 262144"),
        (".spec.resources", models.MSG_REQUESTS_WITHIN_LIMITS, "quantity(self.requests[k]).compareTo("),
        (".spec.resources.requests", models.MSG_RESOURCE_NAMES["requests"], "k in ['cpu', 'memory'"),
        (".spec.resources.limits", models.MSG_RESOURCE_NAMES["limits"], "k in ['cpu', 'memory'"),
        (".spec.nodeSelector", models.MSG_NODE_SELECTOR_KEYS, "k.indexOf('/') <= 253"),
        (".spec.tolerations[]", models.MSG_TOLERATION_KEY, "self.key.matches("),
        (".spec.tolerations[]", models.MSG_TOLERATION_KEYLESS_EXISTS, "self.operator == 'Exists'"),
        (".spec.tolerations[]", models.MSG_TOLERATION_EXISTS_NO_VALUE, "self.value == ''"),
        (".spec.tolerations[]", models.MSG_TOLERATION_SECONDS_NO_EXECUTE, "self.effect == 'NoExecute'"),
    ],
)
def test_cel_rules_are_present(schema: dict[str, Any], path: str, message: str, rule_part: str) -> None:
    rules = rules_at(schema, path)
    assert message in rules, f"{path}: {sorted(rules)}"
    assert rule_part in rules[message]["rule"]


def test_cel_messages_name_their_field(schema: dict[str, Any]) -> None:
    for path, node in walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].startswith(("spec.", "metadata.")), f"{path}: {rule['message']}"
            assert "\n" not in rule["rule"]


def test_spec_level_rules_point_at_the_field(schema: dict[str, Any]) -> None:
    rules = rules_at(schema, ".spec")
    assert rules[models.MSG_INPUT_TARGET_CHECKED]["fieldPath"] == ".endpoints.input"
    assert rules[models.MSG_ANSWER_MOUNT_CLASH]["fieldPath"] == ".setup.answerFile.mountPath"
    assert rules_at(schema, ".spec.resources")[models.MSG_REQUESTS_WITHIN_LIMITS]["fieldPath"] == ".requests"
    toleration = rules_at(schema, ".spec.tolerations[]")
    assert toleration[models.MSG_TOLERATION_SECONDS_NO_EXECUTE]["fieldPath"] == ".tolerationSeconds"


def test_quantity_rules_parse_only_what_the_pattern_admits(schema: dict[str, Any]) -> None:
    # CEL rules run even where a pattern failed; quantity() must never see what the pattern refused.
    rule = rules_at(schema, ".spec.resources")[models.MSG_REQUESTS_WITHIN_LIMITS]["rule"]
    pattern = f"matches('{models.QUANTITY_PATTERN}')"
    assert rule.count(pattern) == 2
    assert rule.index(pattern) < rule.index("quantity(")


def test_ports_are_bounded_integers(schema: dict[str, Any]) -> None:
    for path, node in walk(schema["properties"]["spec"], ".spec"):
        if path.endswith((".port", ".targetPort")):
            assert (node["type"], node["minimum"], node["maximum"]) == ("integer", 1, 65535), path


# --- the converter itself ---


def test_structural_inlines_refs_and_collapses_optionals() -> None:
    defs = {
        "Inner": {
            "type": "object",
            "title": "Inner",
            "description": "inner",
            "properties": {"x": {"type": "integer"}},
        }
    }
    node = {
        "type": "object",
        "title": "Outer",
        "additionalProperties": False,
        "properties": {
            "a": {
                "anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}],
                "default": None,
                "description": "field a",
            },
            "m": {"type": "object", "additionalProperties": True},
        },
    }
    assert structural(node, defs) == {
        "type": "object",
        "properties": {
            "a": {"type": "object", "description": "field a", "properties": {"x": {"type": "integer"}}},
            "m": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }


def test_structural_refuses_real_unions() -> None:
    with pytest.raises(ValueError, match="unsupported union"):
        structural({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {})


def test_contract_names() -> None:
    # SEMANTICS.md "API v1alpha1 (contract)": users, the kubectl plugin and e2e checks rely on these.
    assert (c.GROUP, c.VERSION, c.API_VERSION, c.KIND, c.PLURAL, c.SINGULAR) == (
        "vmrole.dev",
        "v1alpha1",
        "vmrole.dev/v1alpha1",
        "VMRole",
        "vmroles",
        "vmrole",
    )
    assert c.SHORT_NAMES == ["vmr"]
    assert (c.ROLE_LABEL, c.PEER_GROUP_LABEL) == ("vmrole.dev/role", "vmrole.dev/peer-group")
    assert (c.MANAGED_BY_LABEL, c.MANAGED_BY) == ("app.kubernetes.io/managed-by", "vmrole-operator")
    assert (c.REIMAGE_ANNOTATION, c.REBOOT_ANNOTATION, c.BUSY_ANNOTATION) == (
        "vmrole.dev/reimage",
        "vmrole.dev/reboot",
        "vmrole.dev/busy",
    )
    assert (c.IN_ROTATION_LABEL, c.IN_POOL_LABEL) == ("vmrole.dev/in-rotation", "vmrole.dev/in-pool")
    assert c.CHECK_CONTAINER_PREFIX == "check-"
    assert (c.MAIN_CONTAINER, c.SETUP_CONTAINER) == ("role", "setup")
    assert (c.EPHEMERAL_DISK_VOLUME, c.ANSWER_FILE_VOLUME) == ("ephemeral-disk", "answer-file")
    assert c.DEFAULT_RUN_AS_USER == 65532
    assert (c.INTERNAL_SERVICE_SUFFIX, c.ANSWER_FILE_CONFIGMAP_SUFFIX) == ("-internal", "-answer-file")
    assert c.OPERATOR_NAMESPACE_DEFAULT == "vmrole-system"
    assert (c.OPERATOR_APP_LABEL, c.OPERATOR_APP) == ("app.kubernetes.io/name", "vmrole-operator")
    assert c.MAX_ROLE_NAME_LENGTH == 54
