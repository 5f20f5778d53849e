"""Why a role's instances cannot run, when nothing but the operator can tell: the Degraded reasons.

The API server admits such a role (its objects are valid), and each cause shows up somewhere else:
- an answer file that does not exist: pods scheduled but never given their volumes (the kubelet
  says why only in FailedMount Events). A ConfigMap is looked up by the operator; a Secret it may
  not read, so it is judged from how long an instance has waited for its volumes;
- an image that cannot be pulled: the resolver pod's or an instance's waiting reason;
- a quota (or another admission rule) refusing pods: the Deployment's ReplicaFailure condition,
  since no pod exists to carry it, or the refused resolver pod;
- no node that fits: the PodScheduled condition of an instance, or of the resolver pod.

All of it is a pure function of the objects (and `now` for the volume wait), so recomputing it with
nothing changed gives the same answer and the status writer posts one Event per change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import parse_time
from ..models import VMRole
from .instance_state import list_of, map_of, metadata_of, pod_status_of
from .names import name_of
from .pinning import IMAGE_FAILURE_REASONS, read_resolver_pod
from .scheduling import unschedulable_message

ANSWER_FILE_MISSING = "AnswerFileMissing"
IMAGE_RESOLUTION_FAILED = "ImageResolutionFailed"
IMAGE_PULL_FAILED = "ImagePullFailed"
QUOTA_EXCEEDED = "QuotaExceeded"
INSTANCES_REFUSED = "InstancesRefused"
UNSCHEDULABLE = "Unschedulable"
# Most specific first: the first one found is the Degraded reason.
JUDGED_REASONS = (
    ANSWER_FILE_MISSING,
    IMAGE_RESOLUTION_FAILED,
    IMAGE_PULL_FAILED,
    QUOTA_EXCEEDED,
    INSTANCES_REFUSED,
    UNSCHEDULABLE,
)

# A sandbox is normally made within seconds of scheduling; this long without one, with every other
# volume of an instance optional or the operator's own, points at the answer file's Secret.
VOLUME_WAIT = timedelta(seconds=30)
_MAX_NAMED = 5


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


def _named(pods: Sequence[Mapping[str, Any]]) -> str:
    names = [name_of(p) for p in pods[:_MAX_NAMED]]
    more = len(pods) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in list_of(map_of(obj.get("status")).get("conditions")):
        if map_of(cond).get("type") == type_:
            return map_of(cond)
    return None


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod_status_of(pod)
    return [
        map_of(s) for key in ("initContainerStatuses", "containerStatuses") for s in list_of(status.get(key))
    ]


def waiting_for_volumes_since(pod: Mapping[str, Any]) -> datetime | None:
    """When a scheduled pod started waiting for the kubelet to mount its volumes and make its sandbox;
    None once a container has run, or while it is unscheduled or being deleted."""
    if metadata_of(pod).get("deletionTimestamp") or pod_status_of(pod).get("phase") not in (None, "Pending"):
        return None
    scheduled = _condition(pod, "PodScheduled")
    sandbox = _condition(pod, "PodReadyToStartContainers")
    if scheduled is None or scheduled.get("status") != "True":
        return None
    if sandbox is not None and sandbox.get("status") == "True":
        return None
    for status in _container_statuses(pod):
        state = map_of(status.get("state"))
        if state.get("running") is not None or state.get("terminated") is not None:
            return None
        if map_of(status.get("lastState")).get("terminated") is not None:
            return None
    return parse_time(scheduled.get("lastTransitionTime"))


def answer_config_map(role: VMRole) -> str | None:
    """The user's ConfigMap the answer file comes from (an inline one is the operator's own)."""
    answer = role.spec.setup.answerFile if role.spec.setup is not None else None
    return answer.configMapName if answer is not None else None


def _answer_secret(role: VMRole) -> str | None:
    answer = role.spec.setup.answerFile if role.spec.setup is not None else None
    return answer.secretName if answer is not None else None


def _answer_file(
    role: VMRole, pods: Sequence[Mapping[str, Any]], config_map_missing: bool, now: datetime
) -> Problem | None:
    waiting = [(p, since) for p in pods if (since := waiting_for_volumes_since(p)) is not None]
    if not waiting:
        return None
    config_map = answer_config_map(role)
    if config_map is not None and config_map_missing:
        return Problem(
            ANSWER_FILE_MISSING,
            f"ConfigMap {config_map} (spec.setup.answerFile.configMapName) does not exist: "
            f"{_named([p for p, _ in waiting])} cannot start",
        )
    secret = _answer_secret(role)
    stuck = [p for p, since in waiting if now - since >= VOLUME_WAIT]
    if secret is not None and stuck:
        return Problem(
            ANSWER_FILE_MISSING,
            f"Secret {secret} (spec.setup.answerFile.secretName) is missing or cannot be mounted: "
            f"{_named(stuck)} waited over {VOLUME_WAIT.seconds}s for its volumes "
            "(the pod's FailedMount Events say why)",
        )
    return None


def next_volume_deadline(role: VMRole, pods: Sequence[Mapping[str, Any]], now: datetime) -> datetime | None:
    """When a pod waiting for its volumes next counts as stuck (nothing else announces that moment)."""
    if _answer_secret(role) is None:
        return None
    deadlines = [
        since + VOLUME_WAIT
        for p in pods
        if (since := waiting_for_volumes_since(p)) is not None and since + VOLUME_WAIT > now
    ]
    return min(deadlines, default=None)


def _image(
    role: VMRole, pods: Sequence[Mapping[str, Any]], resolvers: Sequence[Mapping[str, Any]]
) -> Problem | None:
    for resolver in resolvers:
        resolution = read_resolver_pod(resolver)
        if resolution is not None and resolution.image == role.spec.image and resolution.failure:
            return Problem(IMAGE_RESOLUTION_FAILED, f"spec.image {role.spec.image}: {resolution.failure}")
    failing: list[Mapping[str, Any]] = []
    first = ""
    for pod in pods:
        for status in _container_statuses(pod):
            waiting = map_of(map_of(status.get("state")).get("waiting"))
            if waiting.get("reason") in IMAGE_FAILURE_REASONS:
                failing.append(pod)
                if not first:
                    first = f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
                break
    if not failing:
        return None
    return Problem(IMAGE_PULL_FAILED, f"{_named(failing)}: {first}")


def _refused(message: str, what: str) -> Problem:
    reason = QUOTA_EXCEEDED if "exceeded quota" in message else INSTANCES_REFUSED
    return Problem(reason, f"{what}: {message}")


def _replica_failure(deployment: Mapping[str, Any] | None) -> Problem | None:
    failure = _condition(deployment or {}, "ReplicaFailure")
    if failure is None or failure.get("status") != "True":
        return None
    return _refused(str(failure.get("message") or failure.get("reason") or ""), "instances not created")


def _unschedulable(
    role: VMRole, pods: Sequence[Mapping[str, Any]], resolvers: Sequence[Mapping[str, Any]]
) -> Problem | None:
    # The resolver pod is placed like the instances (their nodeSelector and tolerations), so a role
    # no node fits is told by it first, before any instance exists.
    for resolver in resolvers:
        resolution = read_resolver_pod(resolver)
        why = unschedulable_message(resolver)
        if resolution is not None and resolution.image == role.spec.image and why is not None:
            name = metadata_of(resolver).get("name")
            return Problem(UNSCHEDULABLE, f"image resolver pod {name} not scheduled: {why}")
    pending = [(pod, why) for pod in pods if (why := unschedulable_message(pod)) is not None]
    if not pending:
        return None
    first = pending[0][1]
    return Problem(UNSCHEDULABLE, f"{_named([p for p, _ in pending])} not scheduled: {first}")


def role_problems(
    role: VMRole,
    pods: Sequence[Mapping[str, Any]],
    deployment: Mapping[str, Any] | None,
    resolvers: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    config_map_missing: bool = False,
    resolver_refused: str | None = None,
) -> list[Problem]:
    """Every judged problem of the role, most specific first.

    `config_map_missing`: the operator looked the answer file's ConfigMap up and it does not exist;
    `resolver_refused`: the API server refused the resolver pod, with this message."""
    found = [
        _answer_file(role, pods, config_map_missing, now),
        _image(role, pods, resolvers),
        _refused(resolver_refused, "image resolver pod not created") if resolver_refused else None,
        _replica_failure(deployment),
        _unschedulable(role, pods, resolvers),
    ]
    problems = [p for p in found if p is not None]
    return sorted(problems, key=lambda p: JUDGED_REASONS.index(p.reason))
