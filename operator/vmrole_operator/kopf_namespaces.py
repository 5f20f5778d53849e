"""kopf's namespace observer, patched: a namespace created while the operator starts is not missed.

kopf (1.45.2, pinned) lists the namespaces once, then starts a watcher, which lists them again and
hands that second listing to `process_discovered_namespace_event` as events of type None; upstream
ignores those ("already noticed by the first listing"). A namespace created between the two
listings is in neither the first listing nor any later event: none of its roles is seen until the
namespace changes (in the e2e suite, that was a role ignored for two minutes, until its namespace
was deleted). Here the second listing is applied like any event; applying a namespace that is
already known changes nothing.

`UPSTREAM_SOURCE` pins what is replaced, so a kopf upgrade that changes it fails a unit test.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

from kopf._core.reactor import observation

UPSTREAM_SOURCE = "eb0d00472eb194e24460d25fc1d2ea388deba6bc7f1e38f4db1932f8babd8a42"

_ORIGINAL: dict[str, Callable[..., Any]] = {}


def upstream_digest() -> str:
    """The digest of kopf's own function (before or after `install`)."""
    fn = _ORIGINAL.get("process", observation.process_discovered_namespace_event)
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()


async def _process_namespace_event(
    *,
    raw_event: Any,
    namespaces: Any,
    insights: Any,
    **_: Any,
) -> None:
    async with insights.revised:
        observation.revise_namespaces(raw_events=[raw_event], insights=insights, namespaces=namespaces)
        insights.revised.notify_all()


def install() -> None:
    """Idempotent. Call before `kopf.run` (the observer looks the function up when it starts)."""
    if _ORIGINAL:
        return
    _ORIGINAL["process"] = observation.process_discovered_namespace_event
    observation.process_discovered_namespace_event = _process_namespace_event
