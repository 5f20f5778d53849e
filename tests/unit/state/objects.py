"""A parsed role and a Deployment as the status computation reads them."""

from __future__ import annotations

from typing import Any

from vmrole_operator import constants as c
from vmrole_operator.models import VMRole, parse_role


def role(**spec: Any) -> VMRole:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "generation": 2},
        "spec": {"image": "localhost/vmrole-test/web:1", "instances": 3, **spec},
    }
    return parse_role(body)


def deployment(
    *, generation: int = 2, observed: int = 2, replicas: int = 3, updated: int = 3
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": 0,
            "availableReplicas": 0,
        },
    }
