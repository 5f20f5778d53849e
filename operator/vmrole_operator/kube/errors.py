"""The answers an idempotent step expects and carries on after, named once; and which failures are
the control plane being away for a moment.

Every write of the operator is safe to repeat, and most carry a UID precondition. So a 404 (the
object is gone already) and a 409 (a newer object has the name now, or it already exists) mean
"nothing to do here" for the caller that says so; anything else is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final, TypeVar

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
