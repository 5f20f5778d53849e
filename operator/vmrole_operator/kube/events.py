"""Kubernetes Events on the operator's objects, posted through kopf (as `vmrole-operator`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

# (object, type, reason, message): the handlers post through kopf; tests record the calls.
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]

MAX_MESSAGE = 1024  # the API server refuses longer Event messages


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(dict(body), type=type_, reason=reason, message=message[:MAX_MESSAGE])  # type: ignore[arg-type]
