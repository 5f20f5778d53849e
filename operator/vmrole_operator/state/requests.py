"""Pure reading of the request annotations (reimage, reboot, busy) and the progress the operator
recorded next to them. Every decision about a request is derived from the objects, never from memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import constants as c

# Tokens: what `date -u +%FT%TZ`, a counter or a short word gives; bounded so Events stay readable.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._:+-]{0,126}[A-Za-z0-9])?$")
BUSY_VALUES = ("true", "false")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def valid_token(value: str | None) -> bool:
    return value is not None and TOKEN_PATTERN.match(value) is not None


def request_problems(obj: Mapping[str, Any], *, pod: bool) -> list[str]:
    """Messages, each naming the annotation, for malformed requests on a pod or a VMRole."""
    annotations = _annotations(obj)
    problems = []
    keys = (c.REIMAGE_ANNOTATION, c.REBOOT_ANNOTATION) if pod else (c.REIMAGE_ANNOTATION,)
    for key in keys:
        value = annotations.get(key)
        if value is not None and not valid_token(value):
            problems.append(
                f"{key}={value!r} is not a valid token: 1-128 letters, digits and ._:+- "
                "starting and ending with a letter or digit"
            )
    busy = annotations.get(c.BUSY_ANNOTATION)
    if pod and busy is not None and busy not in BUSY_VALUES:
        problems.append(f'{c.BUSY_ANNOTATION}={busy!r} must be "true" or "false"')
    if not pod:
        for key in (c.REBOOT_ANNOTATION, c.BUSY_ANNOTATION):
            if key in annotations:
                problems.append(f"{key} applies to an instance pod, not to a VMRole")
    return problems


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pending_reimage(pod: Mapping[str, Any]) -> str | None:
    """The reimage token of a live instance that asked for one (the pod's deletion ends the request)."""
    token = _annotations(pod).get(c.REIMAGE_ANNOTATION)
    return token if valid_token(token) and not is_terminating(pod) else None


def node_drain_token(now_stamp: str) -> str:
    """The reimage token the operator writes on an instance of a cordoned node."""
    return f"{c.NODE_DRAIN_TOKEN_PREFIX}{now_stamp}"


def is_node_drain_token(token: str | None) -> bool:
    return token is not None and token.startswith(c.NODE_DRAIN_TOKEN_PREFIX)


def reimage_withdrawn(pod: Mapping[str, Any]) -> bool:
    """A reimage whose request was taken back after its victim left the Deployment's pool but
    before it left rotation: the instance still serves, and would stay one too many for good."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        not is_terminating(pod)
        and c.REIMAGE_ANNOTATION not in (meta.get("annotations") or {})
        and c.REIMAGE_STARTED_ANNOTATION in (meta.get("annotations") or {})
        and c.IN_POOL_LABEL not in labels
        and labels.get(c.IN_ROTATION_LABEL) == c.IN_ROTATION
    )


def requested_reboot(pod: Mapping[str, Any]) -> str | None:
    """A reboot token not yet acted on, whatever else the pod asks for."""
    annotations = _annotations(pod)
    token = annotations.get(c.REBOOT_ANNOTATION)
    if not valid_token(token) or annotations.get(c.REBOOT_DONE_ANNOTATION) == token or is_terminating(pod):
        return None
    return token


def pending_reboot(pod: Mapping[str, Any]) -> str | None:
    """A reboot token to act on: a reimage asked for before the restart was done supersedes it
    (the instance is replaced, so restarting it first would only delay that)."""
    return None if pending_reimage(pod) else requested_reboot(pod)


def main_restart_count(pod: Mapping[str, Any]) -> int:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == c.MAIN_CONTAINER:
            return int(status.get("restartCount") or 0)
    return 0


def reboot_in_flight(pod: Mapping[str, Any]) -> bool:
    """The reboot was requested from the kubelet, which has not restarted the container yet."""
    recorded = _annotations(pod).get(c.REBOOT_RESTARTS_ANNOTATION)
    if recorded is None or not recorded.isdigit():
        return False
    return main_restart_count(pod) <= int(recorded)


def is_busy(pod: Mapping[str, Any]) -> bool:
    return _annotations(pod).get(c.BUSY_ANNOTATION) == "true"


def rotation_wanted(pod: Mapping[str, Any]) -> bool | None:
    """Whether the instance's IN_ROTATION_LABEL should say true; None while a reimage or reboot
    in progress decides it (each takes the instance out for its drain)."""
    if is_terminating(pod) or pending_reimage(pod) or pending_reboot(pod) or reboot_in_flight(pod):
        return None
    return not is_busy(pod)


def rebooted_image(image: str) -> str:
    """An equivalent reference to the same digest that differs from `image`, so the kubelet restarts
    the container. Toggles the tag, so repeated reboots never grow the reference."""
    name, sep, digest = image.partition("@")
    if not sep:
        raise ValueError(f"{image} is not pinned by digest; a reboot needs a digest reference")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return f"{name.rsplit(':', 1)[0]}@{digest}"
    return f"{name}:{c.REBOOT_IMAGE_TAG}@{digest}"


def role_reimage_token(role_body: Mapping[str, Any]) -> str | None:
    token = _annotations(role_body).get(c.REIMAGE_ANNOTATION)
    return token if valid_token(token) else None
