"""Namespaces being deleted: nothing new can be created in them, Events included.

The API server refuses every create there (403, cause NamespaceTerminating), and kopf retries an
Event it cannot post several times, logging each try as an error. So once a role's run has been
refused that way, its namespace is remembered, the run ends quietly, and no more Events are posted
there. A namespace cannot stop being deleted; but one of the same name can be made again later,
and a role created after the mark is proof of that (no role can be created in a namespace being
deleted), so such a role clears it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..clock import parse_time
from ..kube.events import EventPoster

# Long past any namespace's deletion; only bounds what is kept.
FORGET_AFTER = timedelta(hours=1)


class TerminatingNamespaces:
    def __init__(self) -> None:
        self._since: dict[str, datetime] = {}

    def mark(self, namespace: str, now: datetime) -> bool:
        """Remembers that `namespace` is being deleted; True the first time it is told."""
        for old in [ns for ns, since in self._since.items() if now - since > FORGET_AFTER]:
            del self._since[old]
        first = namespace not in self._since
        self._since.setdefault(namespace, now)
        return first

    def holds(self, namespace: str) -> bool:
        return namespace in self._since

    def seen_role(self, role: Mapping[str, Any]) -> None:
        """A role created after its namespace was marked lives in a namespace made anew."""
        meta = role.get("metadata") or {}
        since = self._since.get(str(meta.get("namespace")))
        created = parse_time(meta.get("creationTimestamp"))
        if since is not None and created is not None and created > since:
            del self._since[str(meta.get("namespace"))]

    def gate(self, post_event: EventPoster) -> EventPoster:
        """`post_event`, except for objects in a namespace being deleted."""

        def post(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
            if not self.holds(str((obj.get("metadata") or {}).get("namespace"))):
                post_event(obj, type_, reason, message)

        return post
