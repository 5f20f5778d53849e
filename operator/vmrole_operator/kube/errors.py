"""The answers an idempotent step expects and carries on after, named once; and which failures are
the control plane being away for a moment.

Every write of the operator is safe to repeat, and most carry a UID precondition. So a 404 (the
object is gone already) and a 409 (a newer object has the name now, or it already exists) mean
"nothing to do here" for the caller that says so; anything else is raised.

Two kinds of 403 no retry gets past soon are told apart here too: a namespace being deleted, where
nothing new can ever be created, and an admission refusal of a create (a quota, say).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, Final, TypeVar

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

GONE: Final = frozenset({404})
GONE_OR_REPLACED: Final = frozenset({404, 409})
EXISTS: Final = frozenset({409})


def unless(expected: Collection[int], call: Callable[[], T]) -> T | None:
    """`call()`, or None when the API answered one of the `expected` statuses."""
    try:
        return call()
    except ApiException as e:
        if e.status in expected:
            return None
        raise


# What the API server answers while it, or etcd behind it, is restarting or overloaded.
UNAVAILABLE: Final = frozenset({429, 500, 502, 503, 504})


def transient(error: BaseException) -> bool:
    """The API server could not be reached or could not answer right now (connection refused or
    reset, a timeout, a 5xx or 429 while it or etcd restarts): the same call later may well succeed.
    The caller retries it and says so in one line, with no traceback: nothing is wrong with it."""
    if isinstance(error, ApiException):
        return error.status in UNAVAILABLE or not error.status
    return isinstance(error, urllib3.exceptions.HTTPError | OSError)


def describe(error: BaseException) -> str:
    """One line for a log: the HTTP status and reason, or the connection error."""
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}".strip()
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    return " ".join(f"{type(error).__name__}: {error}".split())


def _status_body(error: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def message_of(error: ApiException) -> str:
    """The API server's own words for a refusal (its Status message), else the HTTP reason."""
    return str(_status_body(error).get("message") or error.reason or error.status)


def namespace_terminating(error: BaseException) -> bool:
    """The namespace is being deleted, so nothing new may be created in it (403 from the API server's
    NamespaceLifecycle admission, naming the cause NamespaceTerminating). Waiting will not help."""
    if not isinstance(error, ApiException) or error.status != 403:
        return False
    body = _status_body(error)
    causes = (body.get("details") or {}).get("causes") or []
    # A StatusCause's type is spelled "reason" in JSON.
    if any(isinstance(cause, dict) and cause.get("reason") == "NamespaceTerminating" for cause in causes):
        return True
    return "because it is being terminated" in str(body.get("message") or "")


def refused(error: BaseException) -> bool:
    """An admission refusal of a create (a quota, a LimitRange, a policy): not ours to retry soon."""
    return isinstance(error, ApiException) and error.status == 403 and not namespace_terminating(error)
