"""Hypothesis strategies for VMRole manifests, with every leaf drawn from the generated CRD schema.

`valid_roles()` builds roles that satisfy every rule of the CRD (its structure encodes the cross-field
rules: one check kind, one answer-file source, input ports that are checked, requests within limits,
...), while the leaves (patterns, enums, bounds, list sizes) come from the schema itself, so a changed
constraint changes what is generated. `near_misses()` takes such a role and breaks or bends one place
of it the way users do: one character too many, a wrong case, a bound crossed by one, a key dropped,
an unknown key added, a list entry repeated. Some near misses are still valid; which ones is for the
API server and `parse_role` to say, and they must say the same.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

from vmrole_operator import models as m
from vmrole_operator.crd import openapi_schema
from vmrole_operator.quantity import quantity_value

Json = dict[str, Any]
SCHEMA: Json = openapi_schema()
SPEC: Json = SCHEMA["properties"]["spec"]

# Small sizes keep each example a few quick requests; the schema's own bounds are tested by the
# curated cases in test_admission.py.
MAX_LIST = 3


def node(path: str) -> Json:
    """The schema node at `path` under spec: ".a.b", "[]" for list items, "{}" for map values."""
    current = SPEC
    for part in path.replace("[]", ".[]").replace("{}", ".{}").split(".")[1:]:
        if part == "[]":
            current = current["items"]
        elif part == "{}":
            current = current["additionalProperties"]
        else:
            current = current["properties"][part]
    return current


def leaf(path: str) -> st.SearchStrategy[Any]:
    """Any value the schema node at `path` admits on its own (no cross-field rule considered)."""
    return _leaf_of(node(path))


def text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Free text, non-ASCII included (commands, env values, answer-file contents)."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def label_key() -> st.SearchStrategy[str]:
    key = st.from_regex(m.QUALIFIED_NAME_PATTERN, fullmatch=True)
    return key.filter(lambda k: "/" not in k or len(k.rpartition("/")[0]) <= m.MAX_QUALIFIED_PREFIX_LENGTH)


def role_name() -> st.SearchStrategy[str]:
    longest = "r" * m.c.MAX_ROLE_NAME_LENGTH
    generated = st.from_regex(m.DNS_1035_PATTERN, fullmatch=True).filter(
        lambda n: len(n) <= m.c.MAX_ROLE_NAME_LENGTH
    )
    return st.one_of(st.just(longest), generated)


def _unique_by(key: Callable[[Any], Any], elements: st.SearchStrategy[Any], max_size: int = MAX_LIST) -> Any:
    return st.lists(elements, max_size=max_size, unique_by=key)


@st.composite
def _checks(draw: st.DrawFn) -> list[Json]:
    def check(name: str, kind: str, port: int) -> Json:
        if kind == "tcpSocket":
            return {"name": name, "tcpSocket": {"port": port}}
        http: Json = {"port": port}
        if draw(st.booleans()):
            http["path"] = draw(leaf(".autoStart[].httpGet.path"))
        if draw(st.booleans()):
            http["scheme"] = draw(leaf(".autoStart[].httpGet.scheme"))
        return {"name": name, "httpGet": http}

    names = draw(st.lists(leaf(".autoStart[].name"), max_size=MAX_LIST, unique=True))
    return [
        check(
            name, draw(st.sampled_from(["tcpSocket", "httpGet"])), draw(leaf(".autoStart[].tcpSocket.port"))
        )
        for name in names
    ]


@st.composite
def _endpoint_list(draw: st.DrawFn, which: str, checked_ports: list[int]) -> list[Json]:
    prefix = f".endpoints.{which}[]"
    names = draw(st.lists(leaf(f"{prefix}.name"), max_size=MAX_LIST, unique=True))
    endpoints: list[Json] = []
    used: set[tuple[int, str]] = set()
    for name in names:
        endpoint: Json = {"name": name, "port": draw(leaf(f"{prefix}.port"))}
        if checked_ports:
            # An input endpoint must lead to a checked port (MSG_INPUT_TARGET_CHECKED).
            target = draw(st.sampled_from(checked_ports))
            if target == endpoint["port"] and draw(st.booleans()):
                pass  # targetPort left unset: port is the target
            else:
                endpoint["targetPort"] = target
        elif draw(st.booleans()):
            endpoint["targetPort"] = draw(leaf(f"{prefix}.targetPort"))
        if draw(st.booleans()):
            endpoint["protocol"] = draw(leaf(f"{prefix}.protocol"))
        key = (endpoint["port"], endpoint.get("protocol", "TCP"))
        if key not in used:
            used.add(key)
            endpoints.append(endpoint)
    return endpoints


@st.composite
def _env(draw: st.DrawFn) -> list[Json]:
    def source() -> Json:
        kind = draw(st.sampled_from(["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"]))
        base = f".env[].valueFrom.{kind}"
        if kind == "fieldRef":
            ref: Json = {"fieldPath": draw(leaf(f"{base}.fieldPath"))}
            if draw(st.booleans()):
                ref["apiVersion"] = "v1"
        elif kind == "resourceFieldRef":
            ref = {"resource": draw(leaf(f"{base}.resource"))}
            if draw(st.booleans()):
                divisors = m.CPU_DIVISORS if ref["resource"].endswith(".cpu") else m.BYTE_DIVISORS
                ref["divisor"] = draw(st.sampled_from(divisors))
        else:
            ref = {"name": draw(leaf(f"{base}.name")), "key": draw(leaf(f"{base}.key"))}
            if draw(st.booleans()):
                ref["optional"] = draw(st.booleans())
        return {kind: ref}

    names = draw(st.lists(leaf(".env[].name"), max_size=MAX_LIST, unique=True))
    return [
        {"name": name, "valueFrom": source()}
        if draw(st.booleans())
        else {"name": name, "value": draw(text())}
        for name in names
    ]


@st.composite
def _resources(draw: st.DrawFn) -> Json:
    quantity = leaf(".resources.limits{}")
    names = st.lists(st.sampled_from(m.RESOURCE_NAMES), unique=True, max_size=len(m.RESOURCE_NAMES))
    limits = {name: draw(quantity) for name in draw(names)}
    requests: Json = {}
    for name in draw(names):
        request = draw(quantity)
        if name in limits and quantity_value(request) > quantity_value(limits[name]):
            request, limits[name] = limits[name], request
        requests[name] = request
    resources: Json = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return resources


@st.composite
def _toleration(draw: st.DrawFn) -> Json:
    toleration: Json = {}
    operator = draw(st.sampled_from(["Exists", "Equal", None]))
    if operator is not None:
        toleration["operator"] = operator
    if operator != "Exists" or draw(st.booleans()):
        toleration["key"] = draw(label_key())
    if operator != "Exists" and draw(st.booleans()):
        toleration["value"] = draw(leaf(".tolerations[].value"))
    if draw(st.booleans()):
        toleration["effect"] = draw(leaf(".tolerations[].effect"))
        if toleration["effect"] == "NoExecute" and draw(st.booleans()):
            toleration["tolerationSeconds"] = draw(leaf(".tolerations[].tolerationSeconds"))
    return toleration


@st.composite
def valid_specs(draw: st.DrawFn) -> Json:
    spec: Json = {"image": draw(leaf(".image"))}

    def maybe(key: str, strategy: st.SearchStrategy[Any]) -> None:
        if draw(st.booleans()):
            spec[key] = draw(strategy)

    maybe("instances", leaf(".instances"))
    maybe("command", st.lists(text(), max_size=MAX_LIST))
    maybe("args", st.lists(text(), max_size=MAX_LIST))
    maybe("env", _env())
    disk: Json = {}
    if draw(st.booleans()):
        disk["mountPaths"] = draw(
            st.lists(leaf(".ephemeralDisk.mountPaths[]"), max_size=MAX_LIST, unique=True)
        )
    if draw(st.booleans()):
        disk["sizeLimit"] = draw(leaf(".ephemeralDisk.sizeLimit"))
    if disk or draw(st.booleans()):
        spec["ephemeralDisk"] = disk
    if draw(st.booleans()):
        setup: Json = {"command": draw(st.lists(text(), min_size=1, max_size=MAX_LIST))}
        if draw(st.booleans()):
            setup["args"] = draw(st.lists(text(), max_size=MAX_LIST))
        if draw(st.booleans()):
            mounted = disk.get("mountPaths", node(".ephemeralDisk.mountPaths")["default"])
            answer: Json = {}
            if draw(st.booleans()):
                answer["mountPath"] = draw(leaf(".setup.answerFile.mountPath"))
            source = draw(st.sampled_from(["data", "configMapName", "secretName"]))
            if source == "data":
                keys = st.from_regex(m.CONFIG_MAP_KEY_PATTERN, fullmatch=True).filter(
                    lambda k: len(k) <= m.MAX_CONFIG_MAP_KEY_LENGTH
                )
                answer["data"] = draw(st.dictionaries(keys, text(64), max_size=MAX_LIST))
            else:
                answer[source] = draw(leaf(f".setup.answerFile.{source}"))
            if answer.get("mountPath", node(".setup.answerFile.mountPath")["default"]) not in mounted:
                setup["answerFile"] = answer
        spec["setup"] = setup
    checks = draw(_checks())
    if checks or draw(st.booleans()):
        spec["autoStart"] = checks
    maybe("autoStartTimeoutSeconds", leaf(".autoStartTimeoutSeconds"))
    setting_keys = st.from_regex(m.SETTING_KEY_PATTERN, fullmatch=True).filter(lambda k: k not in {".", ".."})
    maybe("settings", st.dictionaries(setting_keys, text(64), max_size=MAX_LIST))
    maybe("settingsChange", leaf(".settingsChange"))
    endpoints: Json = {}
    checked = [check.get("tcpSocket", check.get("httpGet", {})).get("port") for check in checks]
    maybe_input = draw(_endpoint_list("input", checked))
    if maybe_input:
        endpoints["input"] = maybe_input
    maybe_internal = draw(_endpoint_list("internal", []))
    if maybe_internal:
        endpoints["internal"] = maybe_internal
    for key in ("serviceType", "peerGroup"):
        if draw(st.booleans()):
            endpoints[key] = draw(leaf(f".endpoints.{key}"))
    if endpoints:
        spec["endpoints"] = endpoints
    if draw(st.booleans()):
        upgrade = {key: draw(leaf(f".upgrade.{key}")) for key in ("maxUnavailable", "maxSurge", "paused")}
        if upgrade["maxUnavailable"] == upgrade["maxSurge"] == 0:
            upgrade["maxUnavailable"] = 1
        if draw(st.booleans()):
            upgrade["drainSeconds"] = draw(leaf(".upgrade.drainSeconds"))
        spec["upgrade"] = upgrade
    if draw(st.booleans()):
        spec["healing"] = {
            key: draw(leaf(f".healing.{key}")) for key in ("enabled", "maxPerHour", "restartThreshold")
        }
    maybe("resources", _resources())
    if draw(st.booleans()):
        security = {"runAsUser": draw(leaf(".securityContext.runAsUser"))}
        for key in ("runAsGroup", "fsGroup"):
            if draw(st.booleans()):
                security[key] = draw(leaf(f".securityContext.{key}"))
        spec["securityContext"] = security
    maybe("nodeSelector", st.dictionaries(label_key(), leaf(".nodeSelector{}"), max_size=MAX_LIST))
    maybe("tolerations", st.lists(_toleration(), max_size=MAX_LIST))
    return spec


@st.composite
def valid_roles(draw: st.DrawFn) -> Json:
    return {
        "apiVersion": "vmrole.dev/v1alpha1",
        "kind": "VMRole",
        "metadata": {"name": draw(role_name())},
        "spec": draw(valid_specs()),
    }


# --- near misses ---


def _places(value: Any, schema: Json, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Json]]:
    """Every place in `value` with the schema node that governs it."""
    yield path, schema
    if isinstance(value, dict):
        for key, item in value.items():
            if key in schema.get("properties", {}):
                yield from _places(item, schema["properties"][key], (*path, key))
            elif isinstance(schema.get("additionalProperties"), dict):
                yield from _places(item, schema["additionalProperties"], (*path, key))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _places(item, schema["items"], (*path, index))


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        root = root[part]
    return root


STRING_BENDS: list[Callable[[str], str]] = [
    lambda s: s + " ",
    lambda s: s + "\n",
    lambda s: "",
    lambda s: s + "/",
    lambda s: s + "-",
    lambda s: "-" + s,
    lambda s: s.upper(),
    lambda s: s + "é",
    lambda s: s + "." + s,
    lambda s: s + "x" * 64,
    lambda s: s * 5,
    lambda s: "1e100",
    lambda s: "+1",
    lambda s: "1.5Ki",
    lambda s: "..",
    lambda s: "a/b/c",
]
MAP_KEY_BENDS = ["a b", "Example.com/x", "x" * 64, "gpu", "cpu", "..", "a/b", "example.com/", "k", "k\n", ""]


def _kind_of(value: Any, schema: Json) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "map" if isinstance(schema.get("additionalProperties"), dict) else "object"


@st.composite
def near_misses(draw: st.DrawFn) -> Json:
    """A valid role with one place bent. The kind of place is drawn first, so the rare kinds (a map's
    keys, the role's name) are bent about as often as the many string leaves."""
    role = copy.deepcopy(draw(valid_roles()))
    by_kind: dict[str, list[tuple[tuple[Any, ...], Json]]] = {"name": [(("metadata", "name"), {})]}
    for path, schema in _places(role["spec"], SPEC, ("spec",)):
        value = _get(role, path)
        by_kind.setdefault(_kind_of(value, schema), []).append((path, schema))
        if isinstance(value, dict):
            # Absent maps count too: the bent key then arrives in a map of its own.
            for name, prop in schema.get("properties", {}).items():
                if name not in value and isinstance(prop.get("additionalProperties"), dict):
                    by_kind.setdefault("map", []).append(((*path, name), prop))
    kind = draw(st.sampled_from(sorted(by_kind)))
    path, schema = draw(st.sampled_from(by_kind[kind]))
    parent = _get(role, path[:-1])
    value = parent.get(path[-1], {}) if isinstance(parent, dict) else parent[path[-1]]
    replacement: Any
    if kind == "boolean":
        replacement = draw(st.sampled_from([str(value).lower(), int(value)]))
    elif kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        options = [value + 1, value - 1, -1, 0, 2**31, str(value)]
        options += [bound for bound in (low, high) if bound is not None]
        options += [bound - 1 for bound in (low,) if bound is not None]
        options += [bound + 1 for bound in (high,) if bound is not None]
        replacement = draw(st.sampled_from(options))
    elif kind in {"string", "name"}:
        replacement = draw(st.sampled_from(STRING_BENDS))(value)
        if kind == "string" and draw(st.integers(0, 9)) == 0:
            replacement = len(value)  # the wrong type
    elif kind == "list":
        action = draw(st.sampled_from(["repeat", "empty", "drop-first"]))
        if action == "repeat" and value:
            replacement = [*value, copy.deepcopy(value[0])]
        elif action == "drop-first" and value:
            replacement = value[1:]
        else:
            replacement = []
    elif kind == "map":
        replacement = dict(value)
        replacement[draw(st.sampled_from(MAP_KEY_BENDS))] = draw(_any_of(schema["additionalProperties"]))
    else:
        replacement = dict(value)
        declared = schema.get("properties", {})
        action = draw(st.sampled_from(["drop", "unknown", "add"]))
        if action == "drop" and replacement:
            replacement.pop(draw(st.sampled_from(sorted(replacement))))
        elif action == "unknown":
            replacement["unexpected"] = 1
        else:
            # Often a second source, kind or key where the rules want exactly one.
            missing = sorted(set(declared) - set(replacement)) or sorted(declared)
            name = draw(st.sampled_from(missing))
            replacement[name] = draw(_any_of(declared[name]))
    parent[path[-1]] = replacement
    return role


def _any_of(schema: Json, depth: int = 0) -> st.SearchStrategy[Any]:
    """A value built from `schema` alone, cross-field rules ignored."""
    if "enum" in schema or schema.get("type") in {"boolean", "integer", "string"}:
        return _leaf_of(schema)
    if schema.get("type") == "array":
        return st.lists(_any_of(schema["items"], depth + 1), max_size=2 if depth < 2 else 0)
    if isinstance(schema.get("additionalProperties"), dict):
        return st.dictionaries(_map_keys(), _any_of(schema["additionalProperties"], depth + 1), max_size=2)
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    if depth >= 2:
        return st.fixed_dictionaries({k: _any_of(properties[k], depth + 1) for k in sorted(required)})
    return st.fixed_dictionaries(
        {k: _any_of(properties[k], depth + 1) for k in sorted(required)},
        optional={k: _any_of(properties[k], depth + 1) for k in sorted(set(properties) - required)},
    )


def _leaf_of(schema: Json) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31 - 1)
        # Mostly small numbers, often the bounds themselves.
        return st.one_of(
            st.integers(low, min(high, low + 10)), st.sampled_from([low, high]), st.integers(low, high)
        )
    assert kind == "string", schema
    max_length = schema.get("maxLength", 32)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) <= max_length)
    if "x-kubernetes-validations" in schema or max_length < 1024:
        # A bounded string without a pattern is checked by a rule elsewhere (a toleration's key):
        # offer what that rule wants as well as anything else.
        return st.one_of(text(max_length), label_key().filter(lambda s: len(s) <= max_length))
    return text(max_length)


def _map_keys() -> st.SearchStrategy[str]:
    """Keys for any of the spec's maps: resource names, label keys, file names, and bent ones."""
    file_names = st.from_regex(m.CONFIG_MAP_KEY_PATTERN, fullmatch=True).filter(lambda k: len(k) <= 64)
    return st.one_of(st.sampled_from([*m.RESOURCE_NAMES, *MAP_KEY_BENDS]), label_key(), file_names)


def _rule_paths() -> list[str]:
    """Paths (as `node` reads them) of every schema node that carries CEL rules."""
    found: list[str] = []

    def visit(schema: Json, path: str) -> None:
        if schema.get("x-kubernetes-validations"):
            found.append(path)
        for name, prop in schema.get("properties", {}).items():
            visit(prop, f"{path}.{name}")
        if "items" in schema:
            visit(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            visit(schema["additionalProperties"], f"{path}{{}}")

    visit(SPEC, "")
    return found


RULE_PATHS = _rule_paths()


def _put(spec: Json, path: str, value: Any, draw: st.DrawFn) -> None:
    """Set `path` of `spec` to `value`, making missing parents with only their required fields."""
    parts = path.replace("[]", ".[]").replace("{}", ".{}").split(".")[1:]
    container: Any = spec
    walked = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        walked += "[]" if part == "[]" else f".{part}"
        if part == "[]":
            if last:
                container[:1] = [value]
            else:
                if not container:
                    container.append(draw(_any_of(node(walked), depth=99)))
                container = container[0]
        elif last:
            container[part] = value
        else:
            if part not in container:
                container[part] = [] if parts[index + 1] == "[]" else draw(_any_of(node(walked), depth=99))
            container = container[part]


@st.composite
def rule_probes(draw: st.DrawFn) -> Json:
    """A small valid role with one rule-carrying object drawn from its schema alone: the object's
    CEL rules (and pydantic's twins of them) decide, little else can."""
    role = {
        "apiVersion": "vmrole.dev/v1alpha1",
        "kind": "VMRole",
        "metadata": {"name": draw(role_name())},
        "spec": {"image": draw(leaf(".image"))},
    }
    path = draw(st.sampled_from(RULE_PATHS))
    if path == "":
        role["spec"] = draw(_any_of(SPEC, depth=1))
    else:
        _put(role["spec"], path, draw(_any_of(node(path))), draw)
    return role
