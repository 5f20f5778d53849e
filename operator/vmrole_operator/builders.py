"""Pure builders: a VMRole -> the child objects the operator keeps in the cluster.

Every function returns plain dicts ready for the Kubernetes API. Nothing here talks to a cluster,
so the whole desired state can be unit-tested and diffed (`child_differs`) against what exists.
"""

import copy
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import kopf

from vmrole_operator import constants as c
from vmrole_operator.auto_start import (
    PROBE_PERIOD_SECONDS,
    PROBE_TIMEOUT_SECONDS,
    RESTART_GUARD_SECONDS,
    auto_start_plan,
)
from vmrole_operator.models import AutoStartCheck, Endpoint, VMRole


def _role_labels(role: VMRole) -> dict[str, str]:
    """Labels of every object made for the role: the selector label plus ownership."""
    return {c.ROLE_LABEL: role.name, c.MANAGED_BY_LABEL: c.MANAGED_BY}


def _selector(role: VMRole) -> dict[str, str]:
    """What the internal Service and the policy select: every instance, in rotation or not."""
    return {c.ROLE_LABEL: role.name}


def _rotation_selector(role: VMRole) -> dict[str, str]:
    """What the input Service selects: instances the operator has not taken out of rotation. Among
    those, the EndpointSlice controller lists as ready only pods the kubelet reports Ready."""
    return {c.ROLE_LABEL: role.name, c.IN_ROTATION_LABEL: "true"}


def _pool_selector(role: VMRole) -> dict[str, str]:
    """What the Deployment selects: a reimage drops IN_POOL_LABEL so the ReplicaSet replaces the
    victim at once while the victim still serves (surge first)."""
    return {c.ROLE_LABEL: role.name, c.IN_POOL_LABEL: "true"}


def subpath_for(mount_path: str) -> str:
    """The ephemeral disk's sub-directory mounted at `mount_path`.

    The path itself without the leading "/": distinct paths give distinct sub-directories, and
    nested mount paths share data the way directories of one real disk do.
    """
    return mount_path.lstrip("/")


def _ephemeral_mounts(role: VMRole) -> list[dict[str, Any]]:
    return [
        {"name": c.EPHEMERAL_DISK_VOLUME, "mountPath": path, "subPath": subpath_for(path)}
        for path in role.spec.ephemeralDisk.mountPaths
    ]


def _container_security_context() -> dict[str, Any]:
    # The restricted Pod Security Standard, plus a read-only root: the golden image is never written.
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


def _pod_security_context(role: VMRole) -> dict[str, Any]:
    sc = role.spec.securityContext
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": sc.runAsUser,
        "runAsGroup": sc.runAsGroup,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if sc.fsGroup is not None:
        context["fsGroup"] = sc.fsGroup
    return context


def _env(role: VMRole) -> list[dict[str, Any]] | None:
    if role.spec.env is None:
        return None
    return [var.model_dump(exclude_none=True) for var in role.spec.env]


def _resources(role: VMRole) -> dict[str, Any] | None:
    if role.spec.resources is None:
        return None
    return role.spec.resources.model_dump(exclude_none=True)


def _container_ports(role: VMRole) -> list[dict[str, Any]]:
    """One containerPort per distinct (port, protocol) the instance serves or is probed on."""
    endpoints: list[Endpoint] = [*role.spec.endpoints.input, *role.spec.endpoints.internal]
    ports = {(e.effective_target_port, e.protocol) for e in endpoints}
    ports |= {(check.port, "TCP") for check in role.spec.autoStart}
    return [{"containerPort": port, "protocol": protocol} for port, protocol in sorted(ports)]


def _probe_action(check: AutoStartCheck) -> dict[str, Any]:
    if check.tcpSocket is not None:
        return {"tcpSocket": {"port": check.tcpSocket.port}}
    assert check.httpGet is not None  # models guarantee exactly one kind
    http = check.httpGet
    return {"httpGet": {"port": http.port, "path": http.path, "scheme": http.scheme}}


def check_container_name(check: AutoStartCheck) -> str:
    return f"{c.CHECK_CONTAINER_PREFIX}{check.name}"


def _readiness_probe(check: AutoStartCheck, initial_delay: int) -> dict[str, Any]:
    """No liveness probe anywhere: restarting an instance is a user or healing decision."""
    probe = {
        **_probe_action(check),
        "periodSeconds": PROBE_PERIOD_SECONDS,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "failureThreshold": 1,
        "successThreshold": 1,
    }
    if initial_delay:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def _check_container(check: AutoStartCheck, check_image: str) -> dict[str, Any]:
    """A container that only carries the readiness probe of `check` (probes target the pod IP, so it
    reaches the main container's port). Pod Ready needs every container ready."""
    tiny = {"cpu": "10m", "memory": "16Mi"}  # limits too: quotas that demand them check every container
    return {
        "name": check_container_name(check),
        "image": check_image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": _container_security_context(),
        "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}, "limits": tiny},
        "readinessProbe": _readiness_probe(check, initial_delay=0),
    }


def answer_file_configmap_name(role: VMRole) -> str:
    return f"{role.name}{c.ANSWER_FILE_CONFIGMAP_SUFFIX}"


def internal_service_name(role: VMRole) -> str:
    return f"{role.name}{c.INTERNAL_SERVICE_SUFFIX}"


def _answer_file_volume(role: VMRole) -> dict[str, Any] | None:
    answer = role.spec.setup.answerFile if role.spec.setup is not None else None
    if answer is None:
        return None
    if answer.secretName is not None:
        return {"name": c.ANSWER_FILE_VOLUME, "secret": {"secretName": answer.secretName}}
    name = answer.configMapName if answer.configMapName is not None else answer_file_configmap_name(role)
    return {"name": c.ANSWER_FILE_VOLUME, "configMap": {"name": name}}


def _setup_container(role: VMRole, image: str) -> dict[str, Any] | None:
    setup = role.spec.setup
    if setup is None:
        return None
    container: dict[str, Any] = {
        "name": c.SETUP_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(setup.command),
    }
    if setup.args is not None:
        container["args"] = list(setup.args)
    env = _env(role)
    if env is not None:
        container["env"] = env
    resources = _resources(role)
    if resources is not None:
        # Same size as the main container: quotas and LimitRanges demanding limits check init containers.
        container["resources"] = resources
    container["securityContext"] = _container_security_context()
    mounts = _ephemeral_mounts(role)
    if setup.answerFile is not None:
        mounts.append(
            {"name": c.ANSWER_FILE_VOLUME, "mountPath": setup.answerFile.mountPath, "readOnly": True}
        )
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _main_container(role: VMRole, image: str) -> dict[str, Any]:
    spec = role.spec
    container: dict[str, Any] = {"name": c.MAIN_CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent"}
    if spec.command is not None:
        container["command"] = list(spec.command)
    if spec.args is not None:
        container["args"] = list(spec.args)
    env = _env(role)
    if env is not None:
        container["env"] = env
    ports = _container_ports(role)
    if ports:
        container["ports"] = ports
    container["securityContext"] = _container_security_context()
    resources = _resources(role)
    if resources is not None:
        container["resources"] = resources
    mounts = _ephemeral_mounts(role)
    if mounts:
        container["volumeMounts"] = mounts
    main_check, extra_checks = auto_start_plan(spec.autoStart)
    if main_check is not None:
        delay = RESTART_GUARD_SECONDS if extra_checks else 0
        container["readinessProbe"] = _readiness_probe(main_check, initial_delay=delay)
    if spec.upgrade.drainSeconds > 0:
        # Run by the kubelet itself (no shell in the image): the endpoint is already not ready while
        # the instance sleeps, so in-flight requests finish before SIGTERM, whoever deleted the pod.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": spec.upgrade.drainSeconds}}}
    return container


def build_deployment(
    role: VMRole,
    image: str,
    replicas: int,
    reimage_round: str | None = None,
    check_image: str = c.DEFAULT_CHECK_IMAGE,
) -> dict[str, Any]:
    """The Deployment whose pods are the role's instances (never a StatefulSet: no stable storage).

    `reimage_round` is the token of the current reimage-all round: a new value in the pod template
    makes the Deployment replace every instance once, bounded by maxUnavailable/maxSurge.
    `check_image` runs the containers that carry the auto-start checks beyond the first.
    """
    spec = role.spec
    name = role.name
    pod_labels = {**_pool_selector(role), c.IN_ROTATION_LABEL: "true"}
    if spec.endpoints.peerGroup is not None:
        pod_labels[c.PEER_GROUP_LABEL] = spec.endpoints.peerGroup

    volumes: list[dict[str, Any]] = []
    if spec.ephemeralDisk.mountPaths:
        volumes.append(
            {"name": c.EPHEMERAL_DISK_VOLUME, "emptyDir": {"sizeLimit": spec.ephemeralDisk.sizeLimit}}
        )
    answer_volume = _answer_file_volume(role)
    if answer_volume is not None:
        volumes.append(answer_volume)

    _, extra_checks = auto_start_plan(spec.autoStart)
    pod_spec: dict[str, Any] = {
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 30 + spec.upgrade.drainSeconds,
        "securityContext": _pod_security_context(role),
        # Regular containers, not native sidecars: those start one after another before the main
        # container, which delays every (re)image.
        "containers": [
            _main_container(role, image),
            *(_check_container(check, check_image) for check in extra_checks),
        ],
    }
    setup = _setup_container(role, image)
    if setup is not None:
        pod_spec["initContainers"] = [setup]
    if volumes:
        pod_spec["volumes"] = volumes
    if spec.nodeSelector is not None:
        pod_spec["nodeSelector"] = dict(spec.nodeSelector)
    if spec.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in spec.tolerations]

    template_metadata: dict[str, Any] = {"labels": pod_labels}
    if reimage_round is not None:
        template_metadata["annotations"] = {c.REIMAGE_ROUND_ANNOTATION: reimage_round}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {**_role_labels(role), c.APP_NAME_LABEL: c.APP_NAME, c.APP_INSTANCE_LABEL: name},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _pool_selector(role)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxUnavailable": spec.upgrade.maxUnavailable,
                    "maxSurge": spec.upgrade.maxSurge,
                },
            },
            "paused": spec.upgrade.paused,
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }


def _service_ports(endpoints: Sequence[Endpoint]) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "port": e.port, "targetPort": e.effective_target_port, "protocol": e.protocol}
        for e in endpoints
    ]


def build_input_service(role: VMRole) -> dict[str, Any] | None:
    """Service `<name>`: the role's VIP over the instances in rotation."""
    endpoints = role.spec.endpoints
    if not endpoints.input:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": role.name, "labels": _role_labels(role)},
        "spec": {
            "type": endpoints.serviceType,
            "selector": _rotation_selector(role),
            "ports": _service_ports(endpoints.input),
        },
    }


def build_internal_service(role: VMRole) -> dict[str, Any] | None:
    """Headless Service `<name>-internal`: one DNS record per instance IP, for the role's peers."""
    endpoints = role.spec.endpoints
    if not endpoints.internal:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": internal_service_name(role), "labels": _role_labels(role)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            # Internal endpoints are per-instance addresses, not the load balancer: like Azure's
            # RoleEnvironment, peers see every instance, including starting and busy ones.
            "publishNotReadyAddresses": True,
            "selector": _selector(role),
            "ports": _service_ports(endpoints.internal),
        },
    }


def _policy_ports(ports: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": protocol} for port, protocol in sorted(set(ports))]


def build_network_policy(role: VMRole) -> dict[str, Any] | None:
    """NetworkPolicy `<name>`: internal endpoints only for the role's peers.

    Selecting the pods with an Ingress policy denies every port not listed, so each port the
    instance must serve gets a rule here. The auto-start checks are kubelet probes from the node,
    which network plugins allow regardless of policies.
    """
    endpoints = role.spec.endpoints
    if not endpoints.internal:
        return None
    peers = {c.PEER_GROUP_LABEL: endpoints.peerGroup} if endpoints.peerGroup is not None else _selector(role)
    rules: list[dict[str, Any]] = [
        {
            # Internal endpoints: reachable by the service's own components, not by anyone else.
            "from": [{"podSelector": {"matchLabels": peers}}],
            "ports": _policy_ports([(e.effective_target_port, e.protocol) for e in endpoints.internal]),
        }
    ]
    if endpoints.input:
        rules.append(
            {
                # Input endpoints are the public face of the role: open to every source.
                "ports": _policy_ports([(e.effective_target_port, e.protocol) for e in endpoints.input]),
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": role.name, "labels": _role_labels(role)},
        "spec": {
            "podSelector": {"matchLabels": _selector(role)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def build_answer_file_configmap(role: VMRole) -> dict[str, Any] | None:
    """ConfigMap `<name>-answer-file` holding an inline answer file (spec.setup.answerFile.data)."""
    answer = role.spec.setup.answerFile if role.spec.setup is not None else None
    if answer is None or answer.data is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": answer_file_configmap_name(role), "labels": _role_labels(role)},
        "data": dict(answer.data),
    }


def build_children(
    owner: Mapping[str, Any],
    role: VMRole,
    image: str,
    replicas: int,
    reimage_round: str | None = None,
    check_image: str = c.DEFAULT_CHECK_IMAGE,
) -> list[dict[str, Any]]:
    """Every child object of the role, labelled, namespaced and owned by the VMRole `owner`.

    Ordered so that what the Deployment's pods mount (the answer-file ConfigMap) comes first.
    """
    candidates = [
        build_answer_file_configmap(role),
        build_deployment(role, image, replicas, reimage_round, check_image),
        build_input_service(role),
        build_internal_service(role),
        build_network_policy(role),
    ]
    children = [child for child in candidates if child is not None]
    for child in children:
        child["metadata"].setdefault("labels", {}).update(_role_labels(role))
    # kopf.adopt only reads the owner (a kopf.Body at run time; any mapping works). Every child
    # has an explicit name, so it adds the owner reference, namespace and owner's labels but
    # renames nothing; our own labels win over the owner's (it uses setdefault).
    kopf.adopt(children, owner=cast(kopf.Body, owner))
    # adopt appends one shared owner-reference dict to every child: copy each child on its own
    # (one deepcopy of the list would keep the sharing) so editing one never changes another.
    return [copy.deepcopy(child) for child in children]


# --- drift ---

# Kubernetes re-serialises quantities in canonical form ("1024Mi" -> "1Gi", "0.5" -> "500m"), so
# these are compared by value, not by text.
_QUANTITY_RE = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12"}
_DECIMAL |= {"P": "1e15", "E": "1e18"}


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity string, or None when it is not one."""
    match = _QUANTITY_RE.match(text.strip())
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
        if suffix in _BINARY:
            return value * _BINARY[suffix]
        if suffix in _DECIMAL:
            return value * Decimal(_DECIMAL[suffix])
        return value * (Decimal(10) ** int(suffix[1:]))
    except (InvalidOperation, ValueError):
        return None


def _is_quantity_path(path: tuple[str, ...]) -> bool:
    return (len(path) >= 1 and path[-1] == "sizeLimit") or (
        len(path) >= 2 and path[-2] in {"requests", "limits"}
    )


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def _differs(desired: Any, actual: Any, path: tuple[str, ...]) -> bool:
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return True
        for key, value in desired.items():
            if key not in actual:
                # The API omits zero values of omitempty fields (paused: false, value: "").
                if not _is_empty(value):
                    return True
            elif _differs(value, actual[key], (*path, str(key))):
                return True
        return False
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return True
        return any(_differs(d, a, path) for d, a in zip(desired, actual, strict=True))
    if isinstance(desired, str) and isinstance(actual, str) and desired != actual and _is_quantity_path(path):
        desired_value, actual_value = parse_quantity(desired), parse_quantity(actual)
        return desired_value is None or desired_value != actual_value
    # bool is an int in Python: never let True equal 1.
    if isinstance(desired, bool) != isinstance(actual, bool):
        return True
    return bool(desired != actual)


def child_differs(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """True when `actual` (from the API) no longer matches `desired` (from the builders).

    Subset semantics: every key of `desired` must be present and equal in `actual`, recursively;
    keys only in `actual` are ignored, so server-side defaults, status, resourceVersion and other
    controllers' annotations never count as drift, while any field we set that was edited by hand
    does. Lists are compared by length, then element by element with the same rule.

    Limits:
    - A desired zero value (False, 0, "", [], {}) matches an absent key, because the API drops
      zero values of omitempty fields; so clearing such a field by hand is not noticed, but
      setting it to a non-zero value is.
    - A field we stop setting is not noticed if the cluster still has it (it is not in `desired`):
      callers must build `desired` with every field they own set explicitly (e.g. paused: false).
    - List order matters, and an element added by someone else (a sidecar injected by a webhook)
      makes the lengths differ, which counts as drift.
    - Quantities (emptyDir sizeLimit, resources requests/limits) are compared by value; every
      other string is compared exactly, so other server-side normalisation would count as drift.
    """
    return _differs(desired, actual, ())
