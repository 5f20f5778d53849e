"""kopf's namespace observer, patched: its watcher's own listing counts, and a guard on kopf's version."""

from __future__ import annotations

import asyncio

from kopf._cogs.structs import references
from kopf._core.reactor import observation

from vmrole_operator.kopf_namespaces import UPSTREAM_SOURCE, install, upstream_digest

install()


def test_kopfs_replaced_function_is_the_one_the_patch_was_written_for() -> None:
    # Fails on a kopf upgrade that changed it: re-read it, and re-check the patch, before re-pinning.
    assert upstream_digest() == UPSTREAM_SOURCE


def _event(kind: str | None, name: str, **meta: object) -> dict[str, object]:
    return {"type": kind, "object": {"metadata": {"name": name, **meta}}}


def test_a_namespace_only_in_the_watchers_listing_is_observed() -> None:
    """Created between kopf's first listing and its watcher's: it arrives as a type-None event."""

    async def scenario() -> set[object]:
        insights = references.Insights()
        patterns: list[references.NamespacePattern] = ["e2e-*"]
        process = observation.process_discovered_namespace_event  # as the observer looks it up
        await process(raw_event=_event(None, "e2e-new"), namespaces=patterns, insights=insights)
        await process(raw_event=_event(None, "other"), namespaces=patterns, insights=insights)
        await process(raw_event=_event("ADDED", "e2e-later"), namespaces=patterns, insights=insights)
        await process(raw_event=_event("DELETED", "e2e-later"), namespaces=patterns, insights=insights)
        return set(insights.namespaces)

    assert asyncio.run(scenario()) == {"e2e-new"}
