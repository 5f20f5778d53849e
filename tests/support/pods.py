"""Pod dicts shaped like what the API server returns for a VMRole's instances.

Built the way a kubelet reports them (containerd runtime, k8s 1.34): full metadata with the
ReplicaSet owner and pod-template-hash, the spec the Deployment stamps out, and status with
conditions, init, main and auto-start check container statuses.
One function per instance situation, each named after the state it should produce.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from vmrole_operator import constants as c

DIGEST = "3f1c2b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"
IMAGE = f"localhost/vmrole-test/web@sha256:{DIGEST}"
IMAGE_ID = IMAGE  # containerd reports the repo digest it pulled by
CONFIG_ID = "sha256:9b1e0c2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)  # pod created
TIMEOUT_S = 300


def ts(seconds: float) -> str:
    """RFC 3339 timestamp `seconds` after T0, as the API writes it."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def running(started: float) -> dict[str, Any]:
    return {"running": {"startedAt": ts(started)}}


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message is not None:
        state["message"] = message
    return {"waiting": state}


def terminated(exit_code: int, started: float, finished: float, reason: str | None = None) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": ts(started),
            "finishedAt": ts(finished),
            "containerID": "containerd://" + "ab" * 32,
        }
    }


def container_status(
    name: str,
    state: dict[str, Any],
    *,
    last_state: dict[str, Any] | None = None,
    restarts: int = 0,
    ready: bool = False,
    image_id: str = IMAGE_ID,
) -> dict[str, Any]:
    started = "running" in state
    status: dict[str, Any] = {
        "name": name,
        "state": state,
        "lastState": last_state or {},
        "ready": ready,
        "restartCount": restarts,
        "image": IMAGE,
        "imageID": image_id if (started or "terminated" in state or last_state) else "",
        "started": started,
    }
    if started or "terminated" in state:
        status["containerID"] = "containerd://" + "cd" * 32
    if name == c.MAIN_CONTAINER:
        status["volumeMounts"] = [
            {"name": c.EPHEMERAL_DISK_VOLUME, "mountPath": "/tmp"},
        ]
    return status


def _condition(
    type_: str, status: bool, at_s: float, reason: str | None = None, message: str | None = None
) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": type_,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": ts(at_s),
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def make_pod(
    name: str = "web-7d9c5b6f4-x2k4p",
    *,
    with_setup: bool = True,
    scheduled: bool = True,
    setup: dict[str, Any] | None = None,
    main: dict[str, Any] | None = None,
    ready: tuple[bool, float] | None = None,
    rotation: str | None = "true",
    checks: dict[str, bool] | None = None,
    main_ready: bool | None = None,
    annotations: dict[str, str] | None = None,
    deleting_at: float | None = None,
    phase: str = "Running",
    extra_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod of role `web` created at T0. `ready` is (status, transition second); `rotation` the
    value of the in-rotation label; `checks` the ready flags of extra auto-start check containers."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": "web-7d9c5b6f4-",
            "namespace": "default",
            "uid": "0c7d2a4e-5b1f-4f55-9a8e-1f2a3b4c5d6e",
            "resourceVersion": "48213",
            "creationTimestamp": ts(0),
            "labels": {c.ROLE_LABEL: "web", c.IN_POOL_LABEL: "true", "pod-template-hash": "7d9c5b6f4"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9c5b6f4",
                    "uid": "8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": c.MAIN_CONTAINER,
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "readinessProbe": {
                        "httpGet": {"port": 8080, "path": "/healthz", "scheme": "HTTP"},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                        "timeoutSeconds": 1,
                        "successThreshold": 1,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,
        },
        "status": {"phase": phase, "qosClass": "BestEffort"},
    }
    metadata = pod["metadata"]
    spec = pod["spec"]
    status = pod["status"]
    if with_setup:
        spec["initContainers"] = [
            {
                "name": c.SETUP_CONTAINER,
                "image": IMAGE,
                "command": ["/bin/setup"],
                "imagePullPolicy": "IfNotPresent",
            }
        ]
    if annotations:
        metadata["annotations"] = dict(annotations)
    if rotation is not None:
        metadata["labels"][c.IN_ROTATION_LABEL] = rotation
    for check in checks or {}:
        spec["containers"].append({"name": f"{c.CHECK_CONTAINER_PREFIX}{check}", "image": "pause"})
    if deleting_at is not None:
        metadata["deletionTimestamp"] = ts(deleting_at + 30)
        metadata["deletionGracePeriodSeconds"] = 30

    conditions: list[dict[str, Any]] = []
    if not scheduled:
        status["phase"] = "Pending"
        conditions.append(
            _condition(
                "PodScheduled",
                False,
                0,
                "Unschedulable",
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            )
        )
        status["conditions"] = conditions
        return pod

    spec["nodeName"] = "n1"
    status["hostIP"] = "10.0.0.4"
    status["hostIPs"] = [{"ip": "10.0.0.4"}]
    status["startTime"] = ts(1)
    conditions.append(_condition("PodScheduled", True, 0))
    is_ready = ready is not None and ready[0]
    ready_at = ready[1] if ready is not None else 1
    conditions.append(_condition("PodReadyToStartContainers", True, 2))
    setup_done = (not with_setup) or (setup is not None and setup.get("terminated", {}).get("exitCode") == 0)
    conditions.append(_condition("Initialized", setup_done, 2 if not with_setup else 5))
    conditions.append(_condition("Ready", is_ready, ready_at, None if is_ready else "ContainersNotReady"))
    conditions.append(_condition("ContainersReady", is_ready, ready_at))
    status["conditions"] = conditions
    status["podIP"] = "10.88.0.7"
    status["podIPs"] = [{"ip": "10.88.0.7"}]
    if with_setup:
        status["initContainerStatuses"] = [
            container_status(c.SETUP_CONTAINER, setup if setup is not None else waiting("PodInitializing"))
        ]
    main_ready = is_ready if main_ready is None else main_ready
    status["containerStatuses"] = [
        container_status(
            c.MAIN_CONTAINER, main if main is not None else waiting("PodInitializing"), ready=main_ready
        ),
        *(
            container_status(f"{c.CHECK_CONTAINER_PREFIX}{name}", running(7), ready=ok)
            for name, ok in (checks or {}).items()
        ),
    ]
    if extra_status:
        status.update(copy.deepcopy(extra_status))
    return pod


def set_main(
    pod: dict[str, Any], state: dict[str, Any], *, last_state: dict[str, Any] | None = None, restarts: int = 0
) -> dict[str, Any]:
    """Replace the main container status (keeps the pod's readiness)."""
    pod = copy.deepcopy(pod)
    ready = pod["status"]["containerStatuses"][0]["ready"]
    pod["status"]["containerStatuses"][0] = container_status(
        c.MAIN_CONTAINER, state, last_state=last_state, restarts=restarts, ready=ready
    )
    return pod


def set_setup(
    pod: dict[str, Any], state: dict[str, Any], *, last_state: dict[str, Any] | None = None, restarts: int = 0
) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["status"]["initContainerStatuses"] = [
        container_status(c.SETUP_CONTAINER, state, last_state=last_state, restarts=restarts)
    ]
    return pod


# --- one pod per situation ---


def unschedulable() -> dict[str, Any]:
    """CreatingVM: no node fits."""
    return make_pod(scheduled=False)


def pulling_image() -> dict[str, Any]:
    """CreatingVM: scheduled, the setup container's image is being pulled."""
    return make_pod(setup=waiting("ContainerCreating"), main=waiting("PodInitializing"))


def image_pull_backoff_no_setup() -> dict[str, Any]:
    """CreatingVM: no setup; the main image cannot be pulled yet."""
    return make_pod(
        with_setup=False,
        main=waiting("ImagePullBackOff", 'Back-off pulling image "localhost/vmrole-test/web:1"'),
    )


def setup_running() -> dict[str, Any]:
    """StartingVM: setup is running."""
    return make_pod(setup=running(3), main=waiting("PodInitializing"))


def setup_failed() -> dict[str, Any]:
    """FailedStartingVM: setup exited 1 (the terminated state, before the kubelet's back-off)."""
    return make_pod(setup=terminated(1, 3, 4), main=waiting("PodInitializing"))


def setup_crash_loop() -> dict[str, Any]:
    """FailedStartingVM: setup keeps failing; the kubelet waits in back-off."""
    pod = make_pod(main=waiting("PodInitializing"))
    return set_setup(
        pod,
        waiting("CrashLoopBackOff", "back-off 20s restarting failed container=setup"),
        last_state=terminated(2, 30, 31),
        restarts=3,
    )


def setup_done_role_creating() -> dict[str, Any]:
    """StartingVM: setup completed, the role's container is being created (the restart after setup)."""
    return make_pod(setup=terminated(0, 3, 6), main=waiting("ContainerCreating"))


def role_starting(started: float = 7) -> dict[str, Any]:
    """StartingRole: main running, its readiness probe has not passed yet."""
    return make_pod(setup=terminated(0, 3, 6), main=running(started))


def role_starting_extra_check_pending() -> dict[str, Any]:
    """StartingRole: the main check passes, the `api` check's container is not ready yet."""
    return make_pod(setup=terminated(0, 3, 6), main=running(7), main_ready=True, checks={"api": False})


def role_ready() -> dict[str, Any]:
    """ReadyRole: every check passed, pod Ready, selected by the input Service."""
    return make_pod(setup=terminated(0, 3, 6), main=running(7), ready=(True, 13))


def role_ready_with_check() -> dict[str, Any]:
    """ReadyRole with an extra check container, all ready."""
    return make_pod(setup=terminated(0, 3, 6), main=running(7), ready=(True, 13), checks={"api": True})


def role_unresponsive() -> dict[str, Any]:
    """UnresponsiveRole: was in rotation, a readiness probe now fails."""
    pod = make_pod(setup=terminated(0, 3, 6), main=running(7), ready=(False, 120))
    for cond in pod["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond["message"] = "containers with unready status: [role]"
    return pod


def role_busy() -> dict[str, Any]:
    """BusyRole: busy annotation set, the operator took it out of rotation; the kubelet says Ready."""
    return make_pod(
        setup=terminated(0, 3, 6),
        main=running(7),
        ready=(True, 13),
        rotation="busy",
        annotations={c.BUSY_ANNOTATION: "true", c.ROTATION_CHANGED_ANNOTATION: ts(60)},
    )


def role_busy_not_yet_out() -> dict[str, Any]:
    """BusyRole, still selected: the operator must take it out."""
    return make_pod(
        setup=terminated(0, 3, 6),
        main=running(7),
        ready=(True, 13),
        annotations={c.BUSY_ANNOTATION: "true"},
    )


def role_busy_cleared_still_out() -> dict[str, Any]:
    """Busy removed; the label still says busy: the operator must put it back."""
    return make_pod(
        setup=terminated(0, 3, 6),
        main=running(7),
        ready=(True, 13),
        rotation="busy",
        annotations={c.ROTATION_CHANGED_ANNOTATION: ts(60)},
    )


def role_crash_loop() -> dict[str, Any]:
    """FailedStartingRole: the main container keeps exiting."""
    pod = make_pod(setup=terminated(0, 3, 6))
    return set_main(
        pod,
        waiting("CrashLoopBackOff", "back-off 40s restarting failed container=role"),
        last_state=terminated(1, 50, 51),
        restarts=4,
    )


def role_config_error() -> dict[str, Any]:
    """FailedStartingRole: the container cannot be created (missing Secret key in env)."""
    return make_pod(
        with_setup=False,
        main=waiting("CreateContainerConfigError", 'secret "db" not found'),
    )


def role_restarting() -> dict[str, Any]:
    """RestartingRole: the main container just exited (reboot), not yet started again."""
    pod = make_pod(setup=terminated(0, 3, 6), ready=(False, 100))
    return set_main(pod, terminated(137, 7, 100, "Error"), restarts=0)


def role_restarted() -> dict[str, Any]:
    """StartingRole: restarted after being in rotation; Ready turned False when the run ended."""
    pod = make_pod(setup=terminated(0, 3, 6), ready=(False, 101))
    return set_main(pod, running(102), last_state=terminated(137, 7, 100, "Error"), restarts=1)


def role_auto_start_timed_out() -> dict[str, Any]:
    """FailedStartingRole once now > startedAt + timeout (started at second 7)."""
    return role_starting()


def terminating() -> dict[str, Any]:
    """StoppingRole: being deleted (reimage), deletion requested at second 200."""
    return make_pod(
        setup=terminated(0, 3, 6),
        main=running(7),
        ready=(False, 201),
        deleting_at=200,
    )


def evicted() -> dict[str, Any]:
    """StoppingRole: evicted for exceeding the ephemeral disk limit; it never runs again."""
    pod = make_pod(setup=terminated(0, 3, 6), ready=(False, 500), phase="Failed")
    pod = set_main(pod, terminated(137, 7, 500, "ContainerStatusUnknown"))
    pod["status"]["reason"] = "Evicted"
    pod["status"]["message"] = "Pod ephemeral local storage usage exceeds the total limit of containers 1Gi."
    return pod


def with_name(pod: dict[str, Any], name: str) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"]["name"] = name
    return pod


def waiting_for_volumes() -> dict[str, Any]:
    """CreatingVM: scheduled, but the kubelet cannot mount a volume (a missing Secret or ConfigMap),
    so it made no sandbox and started no container; only FailedMount Events say why."""
    pod = make_pod(setup=waiting("PodInitializing"), main=waiting("PodInitializing"))
    status = pod["status"]
    status["phase"] = "Pending"
    for key in ("podIP", "podIPs"):
        status.pop(key)
    for cond in status["conditions"]:
        if cond["type"] == "PodReadyToStartContainers":
            cond["status"] = "False"
    return pod


def setup_image_pull_failed() -> dict[str, Any]:
    """CreatingVM: the golden image cannot be pulled (setup runs from it, so setup's status says so)."""
    return make_pod(
        setup=waiting(
            "ErrImagePull", 'failed to pull and unpack image "localhost/vmrole-test/web@sha256:00"'
        ),
        main=waiting("PodInitializing"),
    )
