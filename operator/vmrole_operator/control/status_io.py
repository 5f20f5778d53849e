"""The VMRole status subresource, written with a merge patch (only what changed is named)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..kube.api import MERGE_PATCH, VMROLES, KubeApi


def patch_role_status(kube: KubeApi, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    kube.patch(
        VMROLES, namespace, name, {"status": dict(status)}, content_type=MERGE_PATCH, subresource="status"
    )
