"""Has a child drifted from what the builders want? Subset semantics, quantities by value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..quantity import parse_quantity


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
