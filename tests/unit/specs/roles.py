"""Roles and accessors shared by the builder tests."""

from __future__ import annotations

import copy
from typing import Any

from tests.support.role_bodies import example_body
from vmrole_operator.models import VMRole, parse_role

PINNED = "localhost/vmrole-test/web@sha256:" + "a" * 64
OWNER_UID = "6f1d0c9e-2b3a-4c5d-8e7f-0a1b2c3d4e5f"


def example_role() -> VMRole:
    return parse_role(example_body())


def owner_body(body: dict[str, Any] | None = None) -> dict[str, Any]:
    owner = copy.deepcopy(body or example_body())
    owner["metadata"]["uid"] = OWNER_UID
    return owner


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def all_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]
