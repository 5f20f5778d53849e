"""The one read of a VMRole that both paths make (role reconciliation and instance operations).

It is always a fresh GET, never a cached copy: the role's status holds the commit points of
reimage-all rounds and heals, which must never be acted on from a stale copy.
"""

from __future__ import annotations

from typing import Any

from ..kube.api import VMROLES, KubeApi
from ..kube.errors import GONE, unless
from ..models import VMRole, parse_role

RoleRead = tuple[dict[str, Any], VMRole]  # the object as the API returned it, and its parsed form


class RoleReader:
    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube

    def read(self, namespace: str, name: str) -> RoleRead | None:
        """None when the role is gone, or its spec cannot be used (the role handler reports that)."""
        body = unless(GONE, lambda: self.kube.get(VMROLES, namespace, name))
        if body is None:
            return None
        try:
            return body, parse_role(body)
        except ValueError:
            return None
