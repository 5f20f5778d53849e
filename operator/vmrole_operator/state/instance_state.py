"""An instance's state, computed purely from its pod as the API returns it.

The vocabulary is the Azure VM Role's (CreatingVM ... ReadyRole ... FailedStartingRole), each state
with the pod timestamp it started at, so the same pod always gives the same answer; `now` only
decides whether the auto-start deadline has passed. Rotation is read here too: in rotation means
kubelet-Ready and selected by the input Service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .. import constants as c
from ..clock import parse_time
from ..models import VMRole
from .requests import (
    is_busy,
    pending_reboot,
    pending_reimage,
    reboot_in_flight,
)


class InstanceState(StrEnum):
    """`status.instances[].state`: the Azure VM Role instance vocabulary (SEMANTICS.md)."""

    CREATING_VM = "CreatingVM"
    STARTING_VM = "StartingVM"
    STARTING_ROLE = "StartingRole"
    READY_ROLE = "ReadyRole"
    BUSY_ROLE = "BusyRole"
    RESTARTING_ROLE = "RestartingRole"
    STOPPING_ROLE = "StoppingRole"
    FAILED_STARTING_VM = "FailedStartingVM"
    FAILED_STARTING_ROLE = "FailedStartingRole"
    UNRESPONSIVE_ROLE = "UnresponsiveRole"


FAILING_STATES = frozenset(
    {InstanceState.FAILED_STARTING_VM, InstanceState.FAILED_STARTING_ROLE, InstanceState.UNRESPONSIVE_ROLE}
)

# Main-container waiting reasons that will not go away by waiting: the pod spec cannot run.
_CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_IMAGE_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})


# --- pod accessors ---


def map_of(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def list_of(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def metadata_of(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return map_of(pod.get("metadata"))


def pod_status_of(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return map_of(pod.get("status"))


def container_status(pod: Mapping[str, Any], name: str, *, init: bool = False) -> Mapping[str, Any] | None:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in list_of(pod_status_of(pod).get(key)):
        if map_of(status).get("name") == name:
            return map_of(status)
    return None


def _condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in list_of(pod_status_of(pod).get("conditions")):
        if map_of(condition).get("type") == type_:
            return map_of(condition)
    return None


def _has_setup(pod: Mapping[str, Any]) -> bool:
    declared = any(
        map_of(ic).get("name") == c.SETUP_CONTAINER
        for ic in list_of(map_of(pod.get("spec")).get("initContainers"))
    )
    return declared or container_status(pod, c.SETUP_CONTAINER, init=True) is not None


def _state(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    """`state.<kind>` (running / waiting / terminated) of a container status, if that is its state."""
    if status is None:
        return None
    state = map_of(status.get("state")).get(kind)
    return map_of(state) if state is not None else None


def _last_terminated(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if status is None:
        return None
    last = map_of(status.get("lastState")).get("terminated")
    return map_of(last) if last is not None else None


def _exit_code(terminated: Mapping[str, Any] | None) -> int | None:
    if terminated is None:
        return None
    code = terminated.get("exitCode")
    return code if isinstance(code, int) else None


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    ready = _condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def main_container_started_at(pod: Mapping[str, Any]) -> datetime | None:
    """When the main container's current run started (None unless it is running)."""
    running = _state(container_status(pod, c.MAIN_CONTAINER), "running")
    return parse_time(running.get("startedAt")) if running is not None else None


def setup_finished(pod: Mapping[str, Any]) -> bool:
    """True when there is no setup container, or it terminated with exit code 0."""
    if not _has_setup(pod):
        return True
    terminated = _state(container_status(pod, c.SETUP_CONTAINER, init=True), "terminated")
    return _exit_code(terminated) == 0


def taken_out_of_rotation(pod: Mapping[str, Any]) -> bool:
    """The operator took the instance out (busy, or the drain before a reimage or reboot): the label
    names why; an instance without the label (made before it existed) counts as in."""
    label = map_of(metadata_of(pod).get("labels")).get(c.IN_ROTATION_LABEL)
    return label is not None and label != "true"


def in_rotation(pod: Mapping[str, Any]) -> bool:
    """A ready endpoint of the input Service: kubelet-Ready, selected, and not terminating."""
    labels = map_of(metadata_of(pod).get("labels"))
    return (
        _pod_ready(pod)
        and labels.get(c.IN_ROTATION_LABEL) == "true"
        and not metadata_of(pod).get("deletionTimestamp")
    )


def _ready_in_current_run(pod: Mapping[str, Any], started_at: datetime) -> bool:
    """True when the pod was Ready at some moment of the main container's current run and is not now.

    The kubelet turns Ready False when a run ends, at about the time the next run starts; a later
    transition (timestamps are whole seconds, hence the margin) can only be a run that passed its
    checks and then failed one.
    """
    ready = _condition(pod, "Ready")
    if ready is None or ready.get("status") == "True":
        return False
    changed = parse_time(ready.get("lastTransitionTime"))
    return changed is not None and changed > started_at + timedelta(seconds=1)


def _failing_checks(pod: Mapping[str, Any], main_check: str | None) -> list[str]:
    """Names of the auto-start checks whose container the kubelet does not report ready."""
    failing = []
    for status in list_of(pod_status_of(pod).get("containerStatuses")):
        name = str(map_of(status).get("name", ""))
        if map_of(status).get("ready"):
            continue
        if name == c.MAIN_CONTAINER and main_check is not None:
            failing.append(main_check)
        elif name.startswith(c.CHECK_CONTAINER_PREFIX):
            failing.append(name.removeprefix(c.CHECK_CONTAINER_PREFIX))
    return failing


def _broken_check_container(pod: Mapping[str, Any]) -> str | None:
    """Why a check container cannot run (its image missing, say), or None."""
    for status in list_of(pod_status_of(pod).get("containerStatuses")):
        name = str(map_of(status).get("name", ""))
        waiting = _state(map_of(status), "waiting")
        broken = waiting is not None and waiting.get("reason") in _CONFIG_ERRORS | _IMAGE_ERRORS
        if name.startswith(c.CHECK_CONTAINER_PREFIX) and waiting is not None and broken:
            return f"check container {name}: {_waiting_text(waiting)}"
    return None


def auto_start_deadline(pod: Mapping[str, Any], timeout_s: int) -> datetime | None:
    """When a starting instance turns FailedStartingRole unless its checks pass first; None when it
    is not waiting for its checks (not running yet, ready, or ready once in this run)."""
    started_at = main_container_started_at(pod)
    if started_at is None or _pod_ready(pod) or _ready_in_current_run(pod, started_at):
        return None
    return started_at + timedelta(seconds=timeout_s)


def seconds_to_next_deadline(role: VMRole, pods: Sequence[Mapping[str, Any]], now: datetime) -> float | None:
    """Seconds until the next starting instance of `role` misses its auto-start deadline (then its
    state changes with no pod event to announce it), or None when none is waiting."""
    timeout_s = role.spec.autoStartTimeoutSeconds
    deadlines = [d for d in (auto_start_deadline(p, timeout_s) for p in pods) if d is not None and d >= now]
    if not deadlines:
        return None
    # Whole-second timestamps: one more second makes sure `now > deadline` holds when it runs.
    return (min(deadlines) - now).total_seconds() + 1.0


# --- instance state ---


def _created_at(pod: Mapping[str, Any]) -> datetime | None:
    return parse_time(metadata_of(pod).get("creationTimestamp"))


def _terminated_text(terminated: Mapping[str, Any] | None) -> str:
    code = _exit_code(terminated)
    reason = terminated.get("reason") if terminated is not None else None
    text = f"exit code {code}" if code is not None else "exited"
    return f"{text} ({reason})" if reason else text


def _waiting_text(waiting: Mapping[str, Any]) -> str:
    reason = str(waiting.get("reason") or "Waiting")
    message = waiting.get("message")
    return f"{reason}: {message}" if message else reason


def _creating(
    pod: Mapping[str, Any], waiting: Mapping[str, Any] | None
) -> tuple[InstanceState, datetime | None, str]:
    since = _created_at(pod)
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        reason = scheduled.get("reason") or "Unschedulable"
        message = scheduled.get("message")
        return (
            InstanceState.CREATING_VM,
            since,
            f"not scheduled: {reason}" + (f": {message}" if message else ""),
        )
    if waiting is not None:
        return InstanceState.CREATING_VM, since, _waiting_text(waiting)
    if not pod_status_of(pod).get("startTime") and metadata_of(pod).get("creationTimestamp"):
        return InstanceState.CREATING_VM, since, "pending"
    return InstanceState.CREATING_VM, since, "creating containers"


def _stopping(pod: Mapping[str, Any]) -> tuple[InstanceState, datetime | None, str] | None:
    metadata = metadata_of(pod)
    deletion = parse_time(metadata.get("deletionTimestamp"))
    if deletion is not None:
        # deletionTimestamp is the deadline (request + grace period); the request time is the "since".
        grace = metadata.get("deletionGracePeriodSeconds")
        since = deletion - timedelta(seconds=grace) if isinstance(grace, int) else deletion
        return InstanceState.STOPPING_ROLE, since, "terminating"
    phase = pod_status_of(pod).get("phase")
    if phase in {"Failed", "Succeeded"}:
        # A finished pod (e.g. evicted for exceeding its ephemeral disk) never runs again.
        status = pod_status_of(pod)
        reason = status.get("reason")
        message = status.get("message")
        detail = f"pod {phase}" + (f" ({reason})" if reason else "") + (f": {message}" if message else "")
        finished = [
            parse_time(map_of(_state(map_of(cs), "terminated")).get("finishedAt"))
            for cs in list_of(status.get("containerStatuses"))
        ]
        times = [t for t in finished if t is not None]
        return InstanceState.STOPPING_ROLE, max(times) if times else _created_at(pod), detail
    return None


def _setup_state(pod: Mapping[str, Any]) -> tuple[InstanceState, datetime | None, str] | None:
    """The state while setup has not completed; None once it has (or when there is none)."""
    if not _has_setup(pod):
        return None
    status = container_status(pod, c.SETUP_CONTAINER, init=True)
    terminated = _state(status, "terminated")
    if terminated is not None:
        if _exit_code(terminated) == 0:
            return None
        return (
            InstanceState.FAILED_STARTING_VM,
            parse_time(terminated.get("finishedAt")),
            f"setup failed: {_terminated_text(terminated)}",
        )
    last = _last_terminated(status)
    waiting = _state(status, "waiting")
    if waiting is not None and last is not None and _exit_code(last) != 0:
        return (
            InstanceState.FAILED_STARTING_VM,
            parse_time(last.get("finishedAt")),
            f"setup failed: {_terminated_text(last)}; {waiting.get('reason') or 'waiting'}",
        )
    running = _state(status, "running")
    if running is not None:
        restarts = status.get("restartCount", 0) if status is not None else 0
        retry = f" (attempt {restarts + 1})" if isinstance(restarts, int) and restarts > 0 else ""
        return InstanceState.STARTING_VM, parse_time(running.get("startedAt")), f"setup running{retry}"
    return _creating(pod, waiting)


def instance_state(
    pod: Mapping[str, Any], now: datetime, auto_start_timeout_s: int, main_check: str | None = None
) -> tuple[InstanceState, datetime | None, str]:
    """The instance's state, since when it is in it (from pod timestamps only), and why.

    `main_check` names the auto-start check probed on the main container, for messages."""
    stopping = _stopping(pod)
    if stopping is not None:
        return stopping
    reimage = pending_reimage(pod)
    if reimage is not None:
        return InstanceState.STOPPING_ROLE, _created_at(pod), f"reimage requested ({reimage}): draining"
    if pending_reboot(pod) or reboot_in_flight(pod):
        main_status = container_status(pod, c.MAIN_CONTAINER)
        since = parse_time((_state(main_status, "running") or {}).get("startedAt")) or _created_at(pod)
        return (
            InstanceState.RESTARTING_ROLE,
            since,
            "reboot requested: draining, then restarting the containers",
        )
    setup = _setup_state(pod)
    if setup is not None:
        return setup

    main = container_status(pod, c.MAIN_CONTAINER)
    running = _state(main, "running")
    waiting = _state(main, "waiting")
    last = _last_terminated(main)
    if waiting is not None and waiting.get("reason") == "CrashLoopBackOff":
        since = parse_time(last.get("finishedAt")) if last is not None else _created_at(pod)
        return InstanceState.FAILED_STARTING_ROLE, since, f"crash loop: last run {_terminated_text(last)}"
    if waiting is not None and waiting.get("reason") in _CONFIG_ERRORS:
        return InstanceState.FAILED_STARTING_ROLE, _created_at(pod), _waiting_text(waiting)

    started_at = parse_time(running.get("startedAt")) if running is not None else None
    if is_busy(pod) or taken_out_of_rotation(pod):
        label = map_of(metadata_of(pod).get("labels")).get(c.IN_ROTATION_LABEL)
        why = "busy (vmrole.dev/busy=true)" if is_busy(pod) else f"{c.IN_ROTATION_LABEL}={label}"
        flipped = parse_time(map_of(metadata_of(pod).get("annotations")).get(c.ROTATION_CHANGED_ANNOTATION))
        since = flipped if taken_out_of_rotation(pod) and flipped is not None else started_at
        return InstanceState.BUSY_ROLE, since or _created_at(pod), f"{why}: out of rotation"

    if running is not None:
        ready = _condition(pod, "Ready")
        ready_since = parse_time(ready.get("lastTransitionTime")) if ready is not None else None
        if _pod_ready(pod):
            return InstanceState.READY_ROLE, ready_since, "in rotation"
        failing = ", ".join(_failing_checks(pod, main_check))
        if started_at is None:
            return InstanceState.STARTING_ROLE, _created_at(pod), "waiting for auto-start checks"
        if _ready_in_current_run(pod, started_at):
            return (
                InstanceState.UNRESPONSIVE_ROLE,
                ready_since,
                "auto-start checks failing" + (f": {failing}" if failing else ""),
            )
        broken = _broken_check_container(pod)
        if broken is not None:
            return InstanceState.FAILED_STARTING_ROLE, started_at, broken
        deadline = started_at + timedelta(seconds=auto_start_timeout_s)
        if now > deadline:
            return (
                InstanceState.FAILED_STARTING_ROLE,
                deadline,
                f"auto-start checks did not all pass within {auto_start_timeout_s}s"
                + (f": {failing}" if failing else ""),
            )
        return (
            InstanceState.STARTING_ROLE,
            started_at,
            "waiting for auto-start checks" + (f": {failing}" if failing else ""),
        )

    terminated = _state(main, "terminated")
    if terminated is not None or (waiting is not None and last is not None):
        ended = terminated if terminated is not None else last
        return (
            InstanceState.RESTARTING_ROLE,
            parse_time(ended.get("finishedAt")) if ended is not None else None,
            f"restarting: last run {_terminated_text(ended)}",
        )
    if waiting is not None and _has_setup(pod):
        # Setup completed and the role's container is being created: the "restart after setup".
        setup_done = _state(container_status(pod, c.SETUP_CONTAINER, init=True), "terminated")
        since = parse_time(setup_done.get("finishedAt")) if setup_done is not None else None
        return (
            InstanceState.STARTING_VM,
            since,
            f"setup complete; starting the role ({_waiting_text(waiting)})",
        )
    return _creating(pod, waiting)
