"""Which events of a VMRole ask for a reconcile.

Every status write of the operator comes back as an event of the role, and changes nothing the
reconciler reads. What it does read of the role itself: the spec (its generation), the labels (the
children carry them) and the annotations (a reimage-all token). A fingerprint of those, kept per
role, tells the events that matter from the echoes of our own writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

RoleKey = tuple[str, str]


def role_fingerprint(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    essential = {
        "generation": meta.get("generation"),
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "deleting": bool(meta.get("deletionTimestamp")),
        "uid": meta.get("uid"),  # a role deleted and made again under the same name
    }
    text = json.dumps(essential, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class RoleChanges:
    def __init__(self) -> None:
        self._seen: dict[RoleKey, str] = {}

    def changed(self, key: RoleKey, body: Mapping[str, Any]) -> bool:
        """True the first time a role is seen (an operator start lists every role) and whenever
        its fingerprint moved since."""
        fingerprint = role_fingerprint(body)
        if self._seen.get(key) == fingerprint:
            return False
        self._seen[key] = fingerprint
        return True

    def forget(self, key: RoleKey) -> None:
        """The role is gone: a new one of the same name starts afresh."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
