"""kopf's ToggleSet with O(1) checks and wake-ups only when its overall state flips.

kopf (1.45.2, pinned) holds back every object's handlers until every indexed object is indexed: the
watcher makes one toggle per listed object in the "indexed" ToggleSet, drops it once the object is
indexed, and every per-object worker waits for the set to be "on". Upstream, each make/drop wakes
every waiting worker, and each re-checks the whole set: O(objects x waiting workers). At 10,000
roles (20,000 indexed pods and Deployments) a restarted operator ran no handler for 15 minutes.
Waiters only ever wait for the set's overall state, so here a set counts its "on" toggles and
notifies only when that state flips. docs/kopf-toggles.md has the upstream-ready patch.

`install()` replaces three methods of ToggleSet and one of the toggles it makes; `UPSTREAM_SOURCE`
pins what is replaced, so a kopf upgrade that changes them fails a unit test instead of silently
running with this patch over code it was not written for.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

# sha256 of the source of each replaced method in kopf 1.45.2 (see tests/unit/test_kopf_toggles.py).
UPSTREAM_SOURCE = {
    "ToggleSet.is_on": "9bdec567f5e2ffe960a1650b763dc7fdf48fcf57f619820a5b38c880bf2c0306",
    "ToggleSet.make_toggle": "354b83ba5188615ff0e4fdebfafbbe18b60ba30335ba55c4bd54d5429519aaa0",
    "ToggleSet.drop_toggle": "434b23b721ea2e78a2f8cf18816a369cc9d41767651b5c7260d2b872008b6e7c",
    "ToggleSet.drop_toggles": "497f86cc1160dd771d125a53d3aa0057df73286019d60d93328403483f34bbd4",
    "Toggle.turn_to": "2a87b55a281f089082bcf3c9603c744ac4fc010d266e507fc0149743d9cf0891",
}

_ORIGINAL: dict[str, Callable[..., Any]] = {}


def source_digest(fn: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()


def upstream_digests() -> dict[str, str]:
    """Digests of kopf's own methods (before or after `install`)."""
    methods = {
        "ToggleSet.is_on": _ORIGINAL.get("ToggleSet.is_on", aiotoggles.ToggleSet.is_on),
        "ToggleSet.make_toggle": _ORIGINAL.get("ToggleSet.make_toggle", aiotoggles.ToggleSet.make_toggle),
        "ToggleSet.drop_toggle": _ORIGINAL.get("ToggleSet.drop_toggle", aiotoggles.ToggleSet.drop_toggle),
        "ToggleSet.drop_toggles": _ORIGINAL.get("ToggleSet.drop_toggles", aiotoggles.ToggleSet.drop_toggles),
        "Toggle.turn_to": _ORIGINAL.get("Toggle.turn_to", aiotoggles.Toggle.turn_to),
    }
    return {name: source_digest(fn) for name, fn in methods.items()}


def _on_count(self: aiotoggles.ToggleSet) -> int:
    return int(getattr(self, "_vmrole_on", 0))


def _overall(self: aiotoggles.ToggleSet) -> bool:
    """The set's state from its count of "on" toggles when its function is all() or any()."""
    toggles: set[aiotoggles.Toggle] = self._toggles
    if self._fn is all:
        return _on_count(self) == len(toggles)
    if self._fn is any:
        return _on_count(self) > 0
    return bool(self._fn(toggle.is_on() for toggle in toggles))


def _is_on(self: aiotoggles.ToggleSet) -> bool:
    return _overall(self)


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    toggle._vmrole_owner = self  # type: ignore[attr-defined]
    async with self._condition:
        before = _overall(self)
        self._toggles.add(toggle)
        self._vmrole_on = _on_count(self) + (1 if toggle.is_on() else 0)  # type: ignore[attr-defined]
        if _overall(self) != before:
            self._condition.notify_all()
    return toggle


def _discard(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    for toggle in toggles:
        if toggle in self._toggles:
            self._toggles.discard(toggle)
            if toggle.is_on():
                self._vmrole_on = _on_count(self) - 1  # type: ignore[attr-defined]


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        before = _overall(self)
        _discard(self, [toggle])
        if _overall(self) != before:
            self._condition.notify_all()


async def _drop_toggles(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = _overall(self)
        _discard(self, list(toggles))
        if _overall(self) != before:
            self._condition.notify_all()


async def _turn_to(self: aiotoggles.Toggle, __state: bool) -> None:
    """A member toggle keeps its set's count; a toggle of no set behaves as upstream's."""
    async with self._condition:
        owner: aiotoggles.ToggleSet | None = getattr(self, "_vmrole_owner", None)
        if owner is not None and self in owner._toggles and self._state != bool(__state):
            owner._vmrole_on = _on_count(owner) + (1 if __state else -1)  # type: ignore[attr-defined]
        self._state = bool(__state)
        # Someone may wait for this very toggle: member toggles turn rarely (peering), so wake all.
        self._condition.notify_all()


def install() -> None:
    """Idempotent. Call before kopf creates its toggle sets (before `kopf.run`)."""
    if _ORIGINAL:
        return
    _ORIGINAL["ToggleSet.is_on"] = aiotoggles.ToggleSet.is_on
    _ORIGINAL["ToggleSet.make_toggle"] = aiotoggles.ToggleSet.make_toggle
    _ORIGINAL["ToggleSet.drop_toggle"] = aiotoggles.ToggleSet.drop_toggle
    _ORIGINAL["ToggleSet.drop_toggles"] = aiotoggles.ToggleSet.drop_toggles
    _ORIGINAL["Toggle.turn_to"] = aiotoggles.Toggle.turn_to
    aiotoggles.ToggleSet.is_on = _is_on  # type: ignore[method-assign]
    aiotoggles.ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    aiotoggles.ToggleSet.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    aiotoggles.Toggle.turn_to = _turn_to  # type: ignore[method-assign]
