"""The Deployment whose pods are the role's instances: containers, probes, disk, security."""

from __future__ import annotations

from typing import Any

from .. import constants as c
from ..models import AutoStartCheck, Endpoint, VMRole
from .answer_file import answer_file_volume
from .auto_start import PROBE_PERIOD_SECONDS, PROBE_TIMEOUT_SECONDS, RESTART_GUARD_SECONDS, auto_start_plan
from .environment import environment_mounts, environment_volumes, settings_hash
from .labels import pool_selector, role_labels
from .placement import tolerations, topology_spread


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


def _image_container(
    role: VMRole, name: str, image: str, command: list[str] | None, args: list[str] | None
) -> dict[str, Any]:
    """What the setup and the main container share: the golden image, the role's environment and
    size (quotas and LimitRanges check init containers too), a read-only root and the disk."""
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if command is not None:
        container["command"] = list(command)
    if args is not None:
        container["args"] = list(args)
    env = _env(role)
    if env is not None:
        container["env"] = env
    resources = _resources(role)
    if resources is not None:
        container["resources"] = resources
    container["securityContext"] = _container_security_context()
    container["volumeMounts"] = [*_ephemeral_mounts(role), *environment_mounts()]
    return container


def _setup_container(role: VMRole, image: str) -> dict[str, Any] | None:
    setup = role.spec.setup
    if setup is None:
        return None
    container = _image_container(role, c.SETUP_CONTAINER, image, setup.command, setup.args)
    if setup.answerFile is not None:
        answer = {"name": c.ANSWER_FILE_VOLUME, "mountPath": setup.answerFile.mountPath, "readOnly": True}
        container["volumeMounts"] = [*container.get("volumeMounts", []), answer]
    return container


def _main_container(role: VMRole, image: str) -> dict[str, Any]:
    spec = role.spec
    container = _image_container(role, c.MAIN_CONTAINER, image, spec.command, spec.args)
    ports = _container_ports(role)
    if ports:
        container["ports"] = ports
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
    pod_labels = {**pool_selector(role), c.IN_ROTATION_LABEL: "true"}
    if spec.endpoints.peerGroup is not None:
        pod_labels[c.PEER_GROUP_LABEL] = spec.endpoints.peerGroup

    volumes: list[dict[str, Any]] = []
    if spec.ephemeralDisk.mountPaths:
        volumes.append(
            {"name": c.EPHEMERAL_DISK_VOLUME, "emptyDir": {"sizeLimit": spec.ephemeralDisk.sizeLimit}}
        )
    answer_volume = answer_file_volume(role)
    if answer_volume is not None:
        volumes.append(answer_volume)
    volumes += environment_volumes(role)

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
    pod_spec["volumes"] = volumes
    if spec.nodeSelector is not None:
        pod_spec["nodeSelector"] = dict(spec.nodeSelector)
    pod_spec["tolerations"] = tolerations(role)
    # Empty, not absent, with spread Off: the drift check sees fields we set, not ones we dropped.
    pod_spec["topologySpreadConstraints"] = topology_spread(role) or []

    template_metadata: dict[str, Any] = {"labels": pod_labels}
    annotations = {}
    if reimage_round is not None:
        annotations[c.REIMAGE_ROUND_ANNOTATION] = reimage_round
    if spec.settingsChange == "Reimage":
        # New settings replace every instance, rolling: the template changes with them.
        annotations[c.SETTINGS_ROUND_ANNOTATION] = settings_hash(role)
    if annotations:
        template_metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {**role_labels(role), c.APP_NAME_LABEL: c.APP_NAME, c.APP_INSTANCE_LABEL: name},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pool_selector(role)},
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
