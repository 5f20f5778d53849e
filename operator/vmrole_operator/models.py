"""The VMRole API (vmrole.dev/v1alpha1) as pydantic models.

These models are the single source of truth for the CRD schema (see `crd.py`): field
descriptions become `kubectl explain` text, and every cross-field rule exists twice, once as a
CEL rule in the schema (so the API server refuses bad input at admission) and once as a pydantic
validator (so `parse_role` agrees with the API server). Both use the same message text.
"""

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from vmrole_operator import constants as c
from vmrole_operator.quantity import QUANTITY_PATTERN, quantity_value

# --- patterns (RE2 and Rust-regex compatible: no look-around, no back-references) ---

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# As in distribution/reference: the first component is a registry host only if it has a dot or a
# port or is "localhost"; otherwise it is a (lowercase) path component.
_DOMAIN = rf"(?:(?:localhost|{_DOMAIN_PART}(?:\.{_DOMAIN_PART})+)(?::[0-9]+)?|{_DOMAIN_PART}:[0-9]+)"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# The reference grammar, restricted to sha256 digests: [host[:port]/]path[:tag][@digest].
IMAGE_PATTERN = (
    rf"^(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_1035_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
# A label value may be empty (nodeSelector values, toleration values).
LABEL_VALUE_OR_EMPTY_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
# Label keys, taint keys: [DNS subdomain "/"] name, the name at most 63 characters. The prefix's own
# bound (253) cannot be said in RE2 without look-around, so it is a separate check (_QUALIFIED_RULE).
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
MAX_QUALIFIED_PREFIX_LENGTH = 253
# A ConfigMap/Secret key (a file name in the answer-file volume): not ".", "..", nor starting with "..".
CONFIG_MAP_KEY_PATTERN = r"^[.]?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"
MAX_CONFIG_MAP_KEY_LENGTH = 253
# Absolute, not "/", no empty, "." or ".." components (the path doubles as an emptyDir subPath).
ABSOLUTE_PATH_PATTERN = r"^(/\.{0,2}[A-Za-z0-9_@+~-][A-Za-z0-9._@+~-]*)+$"
HTTP_PATH_PATTERN = r"^/[!-~]*$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# Matched with fullmatch: Python's "$" also matches before a final newline, RE2's (CEL's) does not.
_DNS_1035 = re.compile(DNS_1035_PATTERN)
_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_PATTERN)
_CONFIG_MAP_KEY = re.compile(CONFIG_MAP_KEY_PATTERN)

# --- list bounds: CEL cost estimation multiplies by them, so every list a rule walks is bounded ---

# Instance names are <role>_IN_<n>, and the label holding one takes at most 63 characters: with a role
# name of at most 54, n stays below 100000 as long as instances and surge stay at 10000 or below.
MAX_INSTANCES = 10000
MAX_SETTINGS = 64
MAX_SETTING_VALUE = 15000  # 64 of them and their keys stay under a ConfigMap's 1 MiB
SETTING_KEY_PATTERN = r"^[-._a-zA-Z0-9]{1,253}$"
_SETTING_KEY_RULE = "self.all(k, k.matches('^[-._a-zA-Z0-9]{1,253}$') && k != '.' && k != '..')"

MAX_CHECKS = 16
MAX_ENDPOINTS = 16
MAX_MOUNT_PATHS = 16
MAX_ARGS = 256
MAX_ENV = 256
MAX_PATH_LENGTH = 256
MAX_NODE_SELECTOR = 64
MAX_ANSWER_FILES = 64
# The ConfigMap holding an inline answer file may not exceed 1 MiB; counted in characters (all CEL can
# count cheaply), at most 4 bytes each.
MAX_ANSWER_FILE_CHARACTERS = 2**20 // 4

# Replicas, rolling-update bounds and user/group ids are int32 in a Deployment. Bounds stay far below
# 2**63: the API server reads a schema's maximum as a float64, and 2**63 - 1 rounds up and overflows.
MAX_INT32 = 2**31 - 1

# Resource names a role may ask for: the container resources every node has.
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
# Downward API fields an environment variable may read (the Pod API's list for env).
EnvFieldPath = Literal[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
EnvResourceField = Literal[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
]
# The Pod API compares a divisor's canonical form with these lists; only canonical forms are taken here.
Divisor = Literal["1m", "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"]
CPU_DIVISORS = ("1m", "1")
BYTE_DIVISORS = tuple(d for d in get_args(Divisor) if d != "1m")

# --- rule messages, shared by the CEL rules and the pydantic validators ---

MSG_ANSWER_FILE_ONE_SOURCE = (
    "spec.setup.answerFile: exactly one of data, configMapName, secretName must be set"
)
MSG_CHECK_ONE_KIND = "spec.autoStart: each check must set exactly one of tcpSocket, httpGet"
MSG_ENV_VALUE_XOR_FROM = "spec.env: value and valueFrom are mutually exclusive"
MSG_INPUT_PORTS_UNIQUE = "spec.endpoints.input: port must be unique per protocol"
MSG_INTERNAL_PORTS_UNIQUE = "spec.endpoints.internal: port must be unique per protocol"
MSG_INPUT_TARGET_CHECKED = (
    "spec.endpoints.input: every input endpoint's targetPort (or port, when targetPort is unset) "
    "must be a port checked by spec.autoStart, so that only started services take traffic"
)
MSG_UPGRADE_NOT_BOTH_ZERO = "spec.upgrade: maxUnavailable and maxSurge must not both be 0"
MSG_ANSWER_MOUNT_CLASH = (
    "spec.setup.answerFile.mountPath: must differ from every spec.ephemeralDisk.mountPaths entry"
)
MSG_NAME_TOO_LONG = (
    f"metadata.name: must be at most {c.MAX_ROLE_NAME_LENGTH} characters, "
    f"so that the Service <name>{c.INTERNAL_SERVICE_SUFFIX} is a valid name"
)
MSG_NODE_SELECTOR_KEYS = (
    "spec.nodeSelector: every key must be a label key: an optional DNS subdomain prefix of at most "
    "253 characters and '/', then at most 63 characters of [-A-Za-z0-9_.] starting and ending "
    "alphanumeric"
)
MSG_TOLERATION_KEY = (
    "spec.tolerations: key must be a label key: an optional DNS subdomain prefix of at most 253 "
    "characters and '/', then at most 63 characters of [-A-Za-z0-9_.] starting and ending alphanumeric"
)
MSG_TOLERATION_KEYLESS_EXISTS = (
    "spec.tolerations: operator must be Exists when key is empty (match every taint)"
)
MSG_TOLERATION_EXISTS_NO_VALUE = "spec.tolerations: value must be empty when operator is Exists"
MSG_TOLERATION_SECONDS_NO_EXECUTE = "spec.tolerations: tolerationSeconds requires effect NoExecute"
MSG_RESOURCE_NAMES = {
    kind: f"spec.resources.{kind}: resource names must be cpu, memory or ephemeral-storage"
    for kind in ("requests", "limits")
}
MSG_REQUESTS_WITHIN_LIMITS = (
    "spec.resources.requests: every request must be at most the limit for the same resource in "
    "spec.resources.limits"
)
MSG_VALUE_FROM_ONE_SOURCE = (
    "spec.env.valueFrom: exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef must be set"
)
MSG_DIVISOR = (
    "spec.env.valueFrom.resourceFieldRef.divisor: must be 1m or 1 for cpu, and one of "
    f"{', '.join(BYTE_DIVISORS)} for memory and ephemeral-storage"
)
MSG_ANSWER_FILE_KEYS = (
    "spec.setup.answerFile.data: every key must be a file name of at most 253 characters of "
    "[-._a-zA-Z0-9], neither '.' nor '..' nor starting with '..'"
)
MSG_ANSWER_FILE_SIZE = (
    f"spec.setup.answerFile.data: file names and contents together must be at most "
    f"{MAX_ANSWER_FILE_CHARACTERS} characters (the ConfigMap holding them is limited to 1 MiB)"
)
MSG_SETTING_KEY = (
    "spec.settings: each key must be a file name of letters, digits, '-', '_' and '.' (not '.' or '..'),"
    " at most 253 characters"
)
MSG_NAME_DNS_1035 = (
    "metadata.name: must be a DNS-1035 label (lowercase letters, digits and '-', starting with a "
    "letter), because the role's Services are named after it"
)


def _rule(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def _list_map(*rules: JsonDict) -> JsonDict:
    """Schema extras for a list of objects keyed by `name`: the API server rejects duplicates itself."""
    extra: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    if rules:
        extra["x-kubernetes-validations"] = list(rules)
    return extra


def _duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    dups: list[Any] = []
    for value in values:
        if value in seen and value not in dups:
            dups.append(value)
        seen.add(value)
    return dups


def _unique_names(items: list[Any], field: str) -> None:
    dups = _duplicates([item.name for item in items])
    if dups:
        raise ValueError(f"{field}: duplicate name(s) {', '.join(map(repr, dups))}")


def is_qualified_name(key: str) -> bool:
    """A label key (also a taint key): what the Pod API accepts in nodeSelector and tolerations."""
    prefix, slash, _ = key.rpartition("/")
    return bool(_QUALIFIED_NAME.fullmatch(key)) and (not slash or len(prefix) <= MAX_QUALIFIED_PREFIX_LENGTH)


def _qualified_rule(var: str) -> str:
    """CEL twin of is_qualified_name (a qualified name has at most one "/")."""
    return (
        f"{var}.matches('{QUALIFIED_NAME_PATTERN}')"
        f" && (!{var}.contains('/') || {var}.indexOf('/') <= {MAX_QUALIFIED_PREFIX_LENGTH})"
    )


def _defaults_of(model: type[BaseModel]) -> JsonDict:
    """Schema default for an optional nested object: all of its own defaults, spelled out.

    The parent default makes the API server apply the inner defaults when the object is omitted.
    It cannot be `{}`: the API server checks a default against the CEL rules as written, without
    applying nested defaults, so `{}` would fail e.g. the spec.upgrade rule.
    """
    # Empty lists are left out: an absent list already means "none".
    dump = model().model_dump(exclude_none=True)
    return {"default": {key: value for key, value in dump.items() if value != []}}


Port = Annotated[int, Field(ge=1, le=65535)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]
AbsolutePath = Annotated[str, Field(pattern=ABSOLUTE_PATH_PATTERN, max_length=MAX_PATH_LENGTH)]
ArgList = Annotated[list[str], Field(max_length=MAX_ARGS)]
LabelValueOrEmpty = Annotated[str, Field(pattern=LABEL_VALUE_OR_EMPTY_PATTERN, max_length=63)]


class _Spec(BaseModel):
    """Base for user-written objects: unknown fields are errors, never silently dropped.

    Strict, like the API server's schema validation: "3" is not an integer, 1 is not a boolean.
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class FieldRef(_Spec):
    """A field of the instance's own pod (the downward API)."""

    apiVersion: Literal["v1"] | None = Field(default=None, description="Version of the pod schema: v1.")
    fieldPath: EnvFieldPath = Field(description="The pod field, e.g. metadata.name or status.podIP.")


class ResourceFieldRef(_Spec):
    """A request or limit of the container the variable is set in."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    "!has(self.divisor) || (self.resource.endsWith('.cpu')"
                    f" ? self.divisor in {list(CPU_DIVISORS)} : self.divisor in {list(BYTE_DIVISORS)})",
                    MSG_DIVISOR,
                    field_path=".divisor",
                )
            ]
        }
    )

    resource: EnvResourceField = Field(
        description="limits.<name> or requests.<name>, name one of cpu, memory, ephemeral-storage."
    )
    divisor: Divisor | None = Field(
        default=None, description="Unit of the value: 1m or 1 for cpu, 1 to 1Ei for memory and storage."
    )

    @model_validator(mode="after")
    def _divisor_fits(self) -> "ResourceFieldRef":
        allowed = CPU_DIVISORS if self.resource.endswith(".cpu") else BYTE_DIVISORS
        if self.divisor is not None and self.divisor not in allowed:
            raise ValueError(MSG_DIVISOR)
        return self


class KeyRef(_Spec):
    """One key of a ConfigMap or Secret in the role's namespace."""

    name: str = Field(description="Name of the object.", pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)
    key: str = Field(
        description="The key whose value is used.",
        pattern=CONFIG_MAP_KEY_PATTERN,
        max_length=MAX_CONFIG_MAP_KEY_LENGTH,
    )
    optional: bool | None = Field(default=None, description="Start even when the object or key is missing.")


class EnvVarSource(_Spec):
    """Where a variable's value comes from; exactly one source must be set."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    "(has(self.fieldRef) ? 1 : 0) + (has(self.resourceFieldRef) ? 1 : 0)"
                    " + (has(self.configMapKeyRef) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) == 1",
                    MSG_VALUE_FROM_ONE_SOURCE,
                )
            ]
        }
    )

    fieldRef: FieldRef | None = Field(default=None, description="A field of the instance's pod.")
    resourceFieldRef: ResourceFieldRef | None = Field(
        default=None, description="A request or limit of the container."
    )
    configMapKeyRef: KeyRef | None = Field(default=None, description="A key of a ConfigMap.")
    secretKeyRef: KeyRef | None = Field(default=None, description="A key of a Secret.")

    @model_validator(mode="after")
    def _one_source(self) -> "EnvVarSource":
        sources = [self.fieldRef, self.resourceFieldRef, self.configMapKeyRef, self.secretKeyRef]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(MSG_VALUE_FROM_ONE_SOURCE)
        return self


class EnvVar(_Spec):
    """An environment variable of the role's containers (same shape as a Pod's env entry)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule("!(has(self.value) && has(self.valueFrom))", MSG_ENV_VALUE_XOR_FROM)
            ]
        }
    )

    name: str = Field(
        description="Name of the environment variable.",
        pattern=ENV_NAME_PATTERN,
        max_length=256,
    )
    value: str | None = Field(default=None, description="Literal value of the variable.")
    valueFrom: EnvVarSource | None = Field(
        default=None,
        description=(
            "Source of the value (one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef), "
            "as in a Pod's env[].valueFrom."
        ),
    )

    @model_validator(mode="after")
    def _value_xor_from(self) -> "EnvVar":
        if self.value is not None and self.valueFrom is not None:
            raise ValueError(MSG_ENV_VALUE_XOR_FROM)
        return self


class EphemeralDisk(_Spec):
    """The instance's writable disk: one emptyDir, lost on reimage, kept across restarts."""

    mountPaths: list[AbsolutePath] = Field(
        default=["/tmp"],
        description=(
            "Absolute paths where the ephemeral disk is mounted (one disk, many mount points); "
            "the root filesystem is read-only, so these are the only writable places."
        ),
        max_length=MAX_MOUNT_PATHS,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    sizeLimit: Quantity = Field(
        default="1Gi",
        description=(
            "Maximum size of the ephemeral disk (a quantity, e.g. 256Mi); exceeding it evicts the instance."
        ),
    )

    @field_validator("mountPaths")
    @classmethod
    def _unique_paths(cls, paths: list[str]) -> list[str]:
        dups = _duplicates(paths)
        if dups:
            raise ValueError(f"spec.ephemeralDisk.mountPaths: duplicate path(s) {', '.join(map(repr, dups))}")
        return paths


class AnswerFile(_Spec):
    """The answer file given to setup (the role's `unattend.xml`), mounted read-only."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    "(has(self.data) ? 1 : 0) + (has(self.configMapName) ? 1 : 0)"
                    " + (has(self.secretName) ? 1 : 0) == 1",
                    MSG_ANSWER_FILE_ONE_SOURCE,
                )
            ]
        }
    )

    mountPath: AbsolutePath = Field(
        default="/etc/vmrole/answer",
        description="Directory where the answer file's keys appear as files (read-only).",
    )
    data: dict[str, str] | None = Field(
        default=None,
        description=(
            "Inline answer file: file name -> content. The operator stores it in the ConfigMap "
            f"<name>{c.ANSWER_FILE_CONFIGMAP_SUFFIX}."
        ),
        json_schema_extra={
            "maxProperties": MAX_ANSWER_FILES,
            "x-kubernetes-validations": [
                _rule(
                    f"self.all(k, size(k) <= {MAX_CONFIG_MAP_KEY_LENGTH}"
                    f" && k.matches('{CONFIG_MAP_KEY_PATTERN}'))",
                    MSG_ANSWER_FILE_KEYS,
                ),
                _rule(
                    f"self.map(k, size(k) + size(self[k])).sum() <= {MAX_ANSWER_FILE_CHARACTERS}",
                    MSG_ANSWER_FILE_SIZE,
                ),
            ],
        },
    )
    configMapName: str | None = Field(
        default=None,
        description="Name of an existing ConfigMap in the role's namespace holding the answer file.",
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
    )
    secretName: str | None = Field(
        default=None,
        description="Name of an existing Secret in the role's namespace holding the answer file.",
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=253,
    )

    @field_validator("data")
    @classmethod
    def _files(cls, data: dict[str, str] | None) -> dict[str, str] | None:
        if data is None:
            return None
        if not all(len(k) <= MAX_CONFIG_MAP_KEY_LENGTH and _CONFIG_MAP_KEY.fullmatch(k) for k in data):
            raise ValueError(MSG_ANSWER_FILE_KEYS)
        if sum(len(k) + len(v) for k, v in data.items()) > MAX_ANSWER_FILE_CHARACTERS:
            raise ValueError(MSG_ANSWER_FILE_SIZE)
        return data

    @model_validator(mode="after")
    def _one_source(self) -> "AnswerFile":
        sources = [self.data, self.configMapName, self.secretName]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(MSG_ANSWER_FILE_ONE_SOURCE)
        return self


class Setup(_Spec):
    """Unattended setup, run from the golden image before the role starts, on every (re)image."""

    command: ArgList = Field(
        description="Setup command (an init container's command); a non-zero exit is a failed start.",
        min_length=1,
    )
    args: ArgList | None = Field(default=None, description="Arguments to the setup command.")
    answerFile: AnswerFile | None = Field(
        default=None, description="Answer file mounted read-only for setup; exactly one source must be set."
    )


class TCPSocketCheck(_Spec):
    """Passes when a TCP connection to the port is accepted."""

    port: Port = Field(description="Port on the instance's IP.")


class HTTPGetCheck(_Spec):
    """Passes when an HTTP GET returns a status in 200..399."""

    port: Port = Field(description="Port on the instance's IP.")
    path: str = Field(default="/", description="Request path.", pattern=HTTP_PATH_PATTERN, max_length=1024)
    scheme: Literal["HTTP", "HTTPS"] = Field(
        default="HTTP", description="HTTP or HTTPS (the certificate is not verified)."
    )


class AutoStartCheck(_Spec):
    """A check for one auto-start service of the image; exactly one kind must be set."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule("has(self.tcpSocket) != has(self.httpGet)", MSG_CHECK_ONE_KIND)
            ]
        }
    )

    name: str = Field(
        description=(
            "Name of the check (unique in spec.autoStart), used in status and Events; a check after "
            "the first runs in a container named check-<name>."
        ),
        pattern=DNS_LABEL_PATTERN,
        max_length=c.MAX_CHECK_NAME_LENGTH,
    )
    tcpSocket: TCPSocketCheck | None = Field(default=None, description="TCP connect check.")
    httpGet: HTTPGetCheck | None = Field(default=None, description="HTTP GET check.")

    @model_validator(mode="after")
    def _one_kind(self) -> "AutoStartCheck":
        if (self.tcpSocket is None) == (self.httpGet is None):
            raise ValueError(MSG_CHECK_ONE_KIND)
        return self

    @property
    def port(self) -> int:
        """The port this check probes."""
        if self.tcpSocket is not None:
            return self.tcpSocket.port
        assert self.httpGet is not None  # guaranteed by _one_kind
        return self.httpGet.port


class Endpoint(_Spec):
    """A named port of the role."""

    name: str = Field(
        description="Port name (unique in its list), also the Service port's name.",
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
    )
    port: Port = Field(description="Port the Service exposes.")
    targetPort: Port | None = Field(
        default=None, description="Port the instance listens on; defaults to port."
    )
    protocol: Literal["TCP", "UDP", "SCTP"] = Field(default="TCP", description="IP protocol.")

    @property
    def effective_target_port(self) -> int:
        """The port on the instance: targetPort, or port when targetPort is unset."""
        return self.targetPort if self.targetPort is not None else self.port


_PORTS_UNIQUE_RULE = "self.all(e, self.filter(f, f.port == e.port && f.protocol == e.protocol).size() == 1)"


def _unique_ports(endpoints: list[Endpoint], message: str) -> None:
    if _duplicates([(e.port, e.protocol) for e in endpoints]):
        raise ValueError(message)


class Endpoints(_Spec):
    """How the role is reached: input endpoints load-balanced, internal endpoints per instance."""

    input: list[Endpoint] = Field(
        default_factory=list,
        description=(
            "Input endpoints: a Service named like the role, load-balancing over the instances in rotation."
        ),
        max_length=MAX_ENDPOINTS,
        json_schema_extra=_list_map(_rule(_PORTS_UNIQUE_RULE, MSG_INPUT_PORTS_UNIQUE)),
    )
    internal: list[Endpoint] = Field(
        default_factory=list,
        description=(
            f"Internal endpoints: a headless Service <name>{c.INTERNAL_SERVICE_SUFFIX} giving each "
            "instance's own IP; a NetworkPolicy admits only the role's own pods (or its peer group) "
            "to these ports."
        ),
        max_length=MAX_ENDPOINTS,
        json_schema_extra=_list_map(_rule(_PORTS_UNIQUE_RULE, MSG_INTERNAL_PORTS_UNIQUE)),
    )
    serviceType: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Type of the input endpoints' Service."
    )
    peerGroup: str | None = Field(
        default=None,
        description=(
            "Peer group (a label value): pods of every role in this namespace with the same "
            "peerGroup may reach each other's internal endpoints."
        ),
        pattern=LABEL_VALUE_PATTERN,
        max_length=63,
    )

    @model_validator(mode="after")
    def _unique(self) -> "Endpoints":
        _unique_names(self.input, "spec.endpoints.input")
        _unique_names(self.internal, "spec.endpoints.internal")
        _unique_ports(self.input, MSG_INPUT_PORTS_UNIQUE)
        _unique_ports(self.internal, MSG_INTERNAL_PORTS_UNIQUE)
        return self


class Upgrade(_Spec):
    """How instances are replaced on an image change or a reimage of all instances."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule("self.maxUnavailable > 0 || self.maxSurge > 0", MSG_UPGRADE_NOT_BOTH_ZERO)
            ]
        }
    )

    maxUnavailable: int = Field(
        default=1, description="At most this many instances out of rotation at once.", ge=0, le=MAX_INT32
    )
    maxSurge: int = Field(
        default=0,
        description="At most this many instances above spec.instances at once (at most 10000).",
        ge=0,
        le=MAX_INSTANCES,
    )
    paused: bool = Field(default=False, description="Stop the rolling replacement where it is.")
    drainSeconds: int = Field(
        default=5,
        description=(
            "Seconds an instance stays up after it left rotation and before it is stopped (a preStop"
            " sleep run by the kubelet, so no shell is needed in the image): lets in-flight requests"
            " finish and every kube-proxy drop the endpoint."
        ),
        ge=0,
        le=300,
    )

    @model_validator(mode="after")
    def _not_both_zero(self) -> "Upgrade":
        if self.maxUnavailable == 0 and self.maxSurge == 0:
            raise ValueError(MSG_UPGRADE_NOT_BOTH_ZERO)
        return self


class Healing(_Spec):
    """Automatic reimage of instances that keep failing."""

    enabled: bool = Field(default=True, description="Reimage failing instances automatically.")
    maxPerHour: int = Field(
        default=6,
        description="At most this many automatic reimages per hour for the role.",
        ge=0,
        le=MAX_INT32,
    )
    restartThreshold: int = Field(
        default=3,
        description=(
            "An instance whose setup or main container failed this many times in a row (crash loop)"
            " is reimaged."
        ),
        ge=1,
        le=100,
    )
    nodeLossSeconds: int = Field(
        default=30,
        description=(
            "How long an instance stays bound to a node that stopped answering (NotReady or unreachable) "
            "before it is evicted and comes back on another node, with a fresh disk; Kubernetes' own "
            "default is 300. The node controller takes about 40 s to see a node as lost, on top of this."
        ),
        ge=0,
        le=86400,
    )


def _resource_list_extra(kind: str) -> JsonDict:
    return {
        "maxProperties": len(RESOURCE_NAMES),
        "x-kubernetes-validations": [
            _rule(f"self.all(k, k in {list(RESOURCE_NAMES)})", MSG_RESOURCE_NAMES[kind])
        ],
    }


# quantity() only on values that match the pattern: CEL rules run even when a pattern fails, and
# the pattern is what keeps the parse cheap.
_REQUESTS_WITHIN_LIMITS_RULE = (
    "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits)"
    f" || !self.requests[k].matches('{QUANTITY_PATTERN}') || !self.limits[k].matches('{QUANTITY_PATTERN}')"
    " || quantity(self.requests[k]).compareTo(quantity(self.limits[k])) <= 0)"
)


class Resources(_Spec):
    """Compute resources of each instance's containers (as a container's resources)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(_REQUESTS_WITHIN_LIMITS_RULE, MSG_REQUESTS_WITHIN_LIMITS, field_path=".requests")
            ]
        }
    )

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources (of cpu, memory, ephemeral-storage), as quantities (e.g. cpu: 100m).",
        json_schema_extra=_resource_list_extra("requests"),
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources (of cpu, memory, ephemeral-storage), as quantities (e.g. memory: 1G).",
        json_schema_extra=_resource_list_extra("limits"),
    )

    @field_validator("requests", "limits")
    @classmethod
    def _names(cls, resources: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if resources is not None and not set(resources) <= set(RESOURCE_NAMES):
            raise ValueError(MSG_RESOURCE_NAMES[str(info.field_name)])
        return resources

    @model_validator(mode="after")
    def _requests_within_limits(self) -> "Resources":
        requests, limits = self.requests or {}, self.limits or {}
        for name, request in requests.items():
            if name in limits and quantity_value(request) > quantity_value(limits[name]):
                raise ValueError(MSG_REQUESTS_WITHIN_LIMITS)
        return self


class Toleration(_Spec):
    """A taint an instance tolerates (as a Pod's toleration)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(
                    f"!has(self.key) || ({_qualified_rule('self.key')})",
                    MSG_TOLERATION_KEY,
                    field_path=".key",
                ),
                _rule(
                    "has(self.key) || self.operator == 'Exists'",
                    MSG_TOLERATION_KEYLESS_EXISTS,
                    field_path=".operator",
                ),
                _rule(
                    "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    MSG_TOLERATION_EXISTS_NO_VALUE,
                    field_path=".value",
                ),
                _rule(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    MSG_TOLERATION_SECONDS_NO_EXECUTE,
                    field_path=".tolerationSeconds",
                ),
            ]
        }
    )

    key: str | None = Field(
        default=None,
        description="Taint key (a label key); unset with operator Exists matches every taint.",
        max_length=MAX_QUALIFIED_PREFIX_LENGTH + 1 + 63,
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(
        default=None,
        description="Taint value (a label value), for Equal.",
        pattern=LABEL_VALUE_OR_EMPTY_PATTERN,
        max_length=63,
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all."
    )
    tolerationSeconds: int | None = Field(
        default=None,
        description="Only with effect NoExecute: how long the instance stays bound after the taint.",
        ge=0,
        le=MAX_INT32,
    )

    @model_validator(mode="after")
    def _pod_rules(self) -> "Toleration":
        if self.key is not None and not is_qualified_name(self.key):
            raise ValueError(MSG_TOLERATION_KEY)
        if self.key is None and self.operator != "Exists":
            raise ValueError(MSG_TOLERATION_KEYLESS_EXISTS)
        if self.operator == "Exists" and self.value:
            raise ValueError(MSG_TOLERATION_EXISTS_NO_VALUE)
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError(MSG_TOLERATION_SECONDS_NO_EXECUTE)
        return self


class SecurityContext(_Spec):
    """Identity the instance's processes run as; they always run as non-root."""

    runAsUser: int = Field(
        default=c.DEFAULT_RUN_AS_USER,
        description="User id of the container processes (non-zero).",
        ge=1,
        le=MAX_INT32,
    )
    runAsGroup: int = Field(
        default=c.DEFAULT_RUN_AS_GROUP, description="Primary group id of the processes.", ge=0, le=MAX_INT32
    )
    fsGroup: int | None = Field(
        default=None, description="Group that owns the mounted volumes.", ge=0, le=MAX_INT32
    )


_INPUT_CHECKED_RULE = (
    "!has(self.autoStart) || size(self.autoStart) == 0 || !has(self.endpoints)"
    " || !has(self.endpoints.input) || self.endpoints.input.all(e, self.autoStart.exists(k,"
    " (has(k.tcpSocket) && k.tcpSocket.port == (has(e.targetPort) ? e.targetPort : e.port))"
    " || (has(k.httpGet) && k.httpGet.port == (has(e.targetPort) ? e.targetPort : e.port))))"
)
_ANSWER_MOUNT_RULE = (
    "!has(self.setup) || !has(self.setup.answerFile) || !has(self.ephemeralDisk)"
    " || !has(self.ephemeralDisk.mountPaths)"
    " || !(self.setup.answerFile.mountPath in self.ephemeralDisk.mountPaths)"
)


class VMRoleSpec(_Spec):
    """Desired state of a VM role: N interchangeable instances of one golden image."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _rule(_INPUT_CHECKED_RULE, MSG_INPUT_TARGET_CHECKED, field_path=".endpoints.input"),
                _rule(_ANSWER_MOUNT_RULE, MSG_ANSWER_MOUNT_CLASH, field_path=".setup.answerFile.mountPath"),
            ]
        }
    )

    image: str = Field(
        description=(
            "The golden image: a tag or a digest reference. A tag is resolved once to a digest and "
            "pinned (status.image), so every instance and every reimage runs exactly that image."
        ),
        pattern=IMAGE_PATTERN,
        max_length=512,
    )
    instances: int = Field(
        default=1,
        description="Number of instances (the scale subresource's spec path), at most 10000.",
        ge=0,
        le=MAX_INSTANCES,
    )
    command: ArgList | None = Field(
        default=None, description="Main container command (overrides the image's)."
    )
    args: ArgList | None = Field(default=None, description="Main container arguments.")
    env: list[EnvVar] | None = Field(
        default=None,
        description="Environment of the main and setup containers.",
        max_length=MAX_ENV,
        json_schema_extra=_list_map(),
    )
    ephemeralDisk: EphemeralDisk = Field(
        default_factory=lambda: EphemeralDisk(),
        json_schema_extra=_defaults_of(EphemeralDisk),
        description="The instance's ephemeral writable disk.",
    )
    setup: Setup | None = Field(
        default=None, description="Unattended setup run before the role starts, on every (re)image."
    )
    autoStart: list[AutoStartCheck] = Field(
        default_factory=list,
        description=(
            "Checks for the image's auto-start services; an instance enters rotation only when setup "
            "finished and every check passes, and leaves it after any container restart until they "
            "pass again."
        ),
        max_length=MAX_CHECKS,
        json_schema_extra=_list_map(),
    )
    autoStartTimeoutSeconds: int = Field(
        default=300,
        description=(
            "An instance whose checks have not all passed this long after it started is FailedStartingRole."
        ),
        ge=1,
        le=86400,
    )
    settings: dict[str, Annotated[str, Field(max_length=MAX_SETTING_VALUE)]] | None = Field(
        default=None,
        description=(
            "Configuration settings, each a file /etc/vmrole/settings/<key> in every instance; a change "
            "reaches running instances without replacing them (see settingsChange)."
        ),
        max_length=MAX_SETTINGS,
        json_schema_extra={"x-kubernetes-validations": [_rule(_SETTING_KEY_RULE, MSG_SETTING_KEY)]},
    )
    spread: Literal["Preferred", "Required", "Off"] = Field(
        default="Preferred",
        description=(
            "Fault domains: instances spread over nodes (topology spread on the hostname, and best effort "
            "on the zone where nodes have one). Preferred places them evenly when it can; Required "
            "leaves an instance Pending rather than put two more on one node than on another; Off does "
            "not spread."
        ),
    )
    settingsChange: Literal["InPlace", "Reboot", "Reimage"] = Field(
        default="InPlace",
        description=(
            "What a settings change does to running instances: InPlace only rewrites the files; Reboot "
            "and Reimage also restart or replace every instance, rolling, at most "
            "upgrade.maxUnavailable at a time."
        ),
    )
    endpoints: Endpoints = Field(
        default_factory=lambda: Endpoints(),
        json_schema_extra=_defaults_of(Endpoints),
        description="Input (load-balanced) and internal (per-instance) endpoints.",
    )
    upgrade: Upgrade = Field(
        default_factory=lambda: Upgrade(),
        json_schema_extra=_defaults_of(Upgrade),
        description="Rolling replacement bounds for image upgrades and reimages.",
    )
    healing: Healing = Field(
        default_factory=lambda: Healing(),
        json_schema_extra=_defaults_of(Healing),
        description="Automatic reimage of failing instances.",
    )
    resources: Resources | None = Field(default=None, description="Compute resources of each instance.")
    securityContext: SecurityContext = Field(
        default_factory=lambda: SecurityContext(),
        json_schema_extra=_defaults_of(SecurityContext),
        description="User and groups the instance runs as.",
    )
    nodeSelector: dict[str, LabelValueOrEmpty] | None = Field(
        default=None,
        description="Node labels an instance's node must have (as a Pod's nodeSelector).",
        json_schema_extra={
            "maxProperties": MAX_NODE_SELECTOR,
            "x-kubernetes-validations": [
                _rule(f"self.all(k, {_qualified_rule('k')})", MSG_NODE_SELECTOR_KEYS)
            ],
        },
    )
    tolerations: list[Toleration] | None = Field(
        default=None, description="Taints the instances tolerate (as a Pod's tolerations).", max_length=32
    )

    @field_validator("settings")
    @classmethod
    def _setting_keys(cls, settings: dict[str, str] | None) -> dict[str, str] | None:
        for key in settings or {}:
            if not re.fullmatch(SETTING_KEY_PATTERN, key) or key in (".", ".."):
                raise ValueError(MSG_SETTING_KEY)
        return settings

    @model_validator(mode="after")
    def _cross_field(self) -> "VMRoleSpec":
        _unique_names(self.autoStart, "spec.autoStart")
        if self.env is not None:
            _unique_names(self.env, "spec.env")
        if self.nodeSelector is not None and not all(map(is_qualified_name, self.nodeSelector)):
            raise ValueError(MSG_NODE_SELECTOR_KEYS)
        if self.autoStart:
            checked = {check.port for check in self.autoStart}
            if any(e.effective_target_port not in checked for e in self.endpoints.input):
                raise ValueError(MSG_INPUT_TARGET_CHECKED)
        answer = self.setup.answerFile if self.setup is not None else None
        if answer is not None and answer.mountPath in self.ephemeralDisk.mountPaths:
            raise ValueError(MSG_ANSWER_MOUNT_CLASH)
        return self


# --- status: written only by the operator (unknown fields ignored: an old status never breaks parsing) ---


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")


_DATE_TIME: JsonDict = {"format": "date-time"}


class InstanceStatus(_Status):
    """One pod of the role, under the instance name it runs as."""

    name: str = Field(
        description=(
            "Instance name, <role>_IN_<n>: kept across reimage, reboot, heal and upgrade. While a "
            "replacement takes over, its old pod and the new one are both listed under it."
        )
    )
    pod: str = Field(description="The pod serving (or about to serve) the instance now.")
    state: str = Field(
        description=(
            "Instance state: CreatingVM, StartingVM, StartingRole, ReadyRole, BusyRole, RestartingRole, "
            "StoppingRole, FailedStartingVM, FailedStartingRole or UnresponsiveRole."
        )
    )
    ready: bool = Field(default=False, description="True when the instance is in rotation (state ReadyRole).")
    restarts: int = Field(default=0, description="Restarts of the main container.")
    podIP: str | None = Field(default=None, description="The instance's IP.")
    node: str | None = Field(default=None, description="Node the instance runs on.")
    since: str | None = Field(
        default=None, description="When the instance entered its state.", json_schema_extra=_DATE_TIME
    )
    message: str | None = Field(default=None, description="Why the instance is in its state.")


class Condition(_Status):
    """A role-level condition (metav1.Condition)."""

    type: str = Field(description="Available, Progressing or Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable reason in CamelCase.")
    message: str = Field(default="", description="Human-readable details.")
    observedGeneration: int | None = Field(
        default=None, description="metadata.generation the condition was computed for."
    )
    lastTransitionTime: str = Field(description="When the status last changed.", json_schema_extra=_DATE_TIME)


class LastReimage(_Status):
    """The last handled reimage-all request."""

    token: str = Field(description="Value of the vmrole.dev/reimage annotation that was handled.")
    startedAt: str = Field(description="When the reimage started.", json_schema_extra=_DATE_TIME)
    completedAt: str | None = Field(
        default=None, description="When every instance had been replaced.", json_schema_extra=_DATE_TIME
    )
    message: str | None = Field(default=None, description="Why the round is held, when it is.")


class HealRecord(_Status):
    """One automatic reimage, recorded before it is requested so a restart neither loses nor repeats it."""

    pod: str = Field(description="The instance that was reimaged.")
    uid: str = Field(description="Its UID.")
    reason: str = Field(description="SetupFailing, CrashLooping or AutoStartTimeout.")
    at: str = Field(description="When it was decided.", json_schema_extra=_DATE_TIME)


class SettingsStatus(_Status):
    """Which spec.settings the instances run with, and since when."""

    hash: str = Field(description="Digest of spec.settings.")
    changedAt: str = Field(
        description="When they changed; instances started before, under settingsChange Reboot, restart.",
        json_schema_extra=_DATE_TIME,
    )


class VMRoleStatus(_Status):
    """Observed state of a VM role."""

    observedGeneration: int | None = Field(
        default=None, description="metadata.generation this status was computed for."
    )
    image: str | None = Field(default=None, description="The pinned golden image (a digest reference).")
    specImage: str | None = Field(
        default=None,
        description="The spec.image value status.image was resolved from; pinned iff it equals spec.image.",
    )
    replicas: int = Field(
        default=0,
        description="Instances that exist and are not stopping (the scale subresource's status path).",
    )
    readyReplicas: int = Field(default=0, description="Instances in rotation (state ReadyRole).")
    selector: str | None = Field(
        default=None, description="Label selector of the instances, in string form (for HPA)."
    )
    instances: list[InstanceStatus] = Field(
        default_factory=list,
        description="One entry per pod, sorted by instance number.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["pod"]},
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Available, Progressing and Degraded.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    lastReimage: LastReimage | None = Field(default=None, description="The last handled reimage-all request.")
    settings: SettingsStatus | None = Field(default=None, description="The settings in effect.")
    heals: int = Field(default=0, description="Automatic reimages done so far.")
    recentHeals: list[HealRecord] | None = Field(
        default=None, description="Automatic reimages of the last hour (the rate limit's memory)."
    )


class VMRole(BaseModel):
    """A VMRole object as the API returns it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    apiVersion: Literal["vmrole.dev/v1alpha1"] = Field(description="vmrole.dev/v1alpha1")
    kind: Literal["VMRole"] = Field(description="VMRole")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: VMRoleSpec = Field(description="Desired state.")
    status: VMRoleStatus | None = Field(default=None, description="Observed state.")

    @model_validator(mode="after")
    def _name(self) -> "VMRole":
        name = self.metadata.get("name")
        if isinstance(name, str):
            if len(name) > c.MAX_ROLE_NAME_LENGTH:
                raise ValueError(MSG_NAME_TOO_LONG)
            if not _DNS_1035.fullmatch(name):
                raise ValueError(MSG_NAME_DNS_1035)
        return self

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        namespace = self.metadata.get("namespace")
        return None if namespace is None else str(namespace)


# Root-level rules: only here may CEL see metadata.name. No fieldPath: the root schema declares no
# metadata properties, so the API server would refuse ".metadata.name" as a path.
ROOT_VALIDATIONS: list[JsonDict] = [
    _rule(f"size(self.metadata.name) <= {c.MAX_ROLE_NAME_LENGTH}", MSG_NAME_TOO_LONG),
    _rule(f"self.metadata.name.matches('{DNS_1035_PATTERN}')", MSG_NAME_DNS_1035),
]


def _loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "constrained-")) or part in {"str", "int"}:
            continue  # pydantic-internal union/constraint steps, not fields
        else:
            path += f".{part}" if path else part
    return path


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, each starting with the field path (e.g. `spec.upgrade: ...`)."""
    lines = []
    for err in error.errors(include_url=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        path = _loc(tuple(err["loc"]))
        # Cross-field messages already name their field(s), like the CEL rules do.
        if message.startswith(("spec.", "metadata.")) or not path:
            lines.append(message)
        else:
            lines.append(f"{path}: {message}")
    return "; ".join(lines)


def _without_nulls(value: Any) -> Any:
    """`value` without null object fields: the API server drops them before defaulting too."""
    if isinstance(value, Mapping):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def parse_role(body: Mapping[str, Any]) -> VMRole:
    """Validate a VMRole object (as the API returns it); raise ValueError naming the bad field(s)."""
    cleaned = _without_nulls(body)
    try:
        return VMRole.model_validate(cleaned)
    except ValidationError as error:
        if all(e["loc"][:1] == ("status",) for e in error.errors()):
            # A status written by an older operator is no reason to refuse the spec: the status is
            # recomputed from the pods anyway.
            return VMRole.model_validate({k: v for k, v in cleaned.items() if k != "status"})
        raise ValueError(f"invalid VMRole: {format_validation_error(error)}") from None
