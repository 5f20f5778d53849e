"""The answers an idempotent step expects and carries on after, named once.

Every write of the operator is safe to repeat, and most carry a UID precondition. So a 404 (the
object is gone already) and a 409 (a newer object has the name now, or it already exists) mean
"nothing to do here" for the caller that says so; anything else is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final, TypeVar

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
