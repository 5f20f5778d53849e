"""Every child object of a role, in the order they are applied, owned by the VMRole."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import kopf

from .. import constants as c
from ..models import VMRole
from .answer_file import build_answer_file_configmap
from .deployment import build_deployment
from .disruption_budget import build_disruption_budget
from .environment import build_settings_configmap, build_topology_configmap
from .labels import role_labels
from .network_policy import build_network_policy
from .services import build_input_service, build_internal_service


def build_children(
    owner: Mapping[str, Any],
    role: VMRole,
    image: str,
    replicas: int,
    reimage_round: str | None = None,
    check_image: str = c.DEFAULT_CHECK_IMAGE,
    topology: str = "",
    room_to_surge: bool = True,
) -> list[dict[str, Any]]:
    """Every child object of the role, labelled, namespaced and owned by the VMRole `owner`.

    `topology` is the `instances` file as the role's pods make it now (environment.topology_text);
    `room_to_surge` is False while one of the Deployment's instances finds no node (the disruption
    budget then falls back to maxUnavailable).
    Ordered so that what the Deployment's pods mount (the ConfigMaps) comes first.
    """
    candidates = [
        build_answer_file_configmap(role),
        build_settings_configmap(role) if role.spec.settings else None,
        build_topology_configmap(role, topology),
        build_deployment(role, image, replicas, reimage_round, check_image),
        build_input_service(role),
        build_internal_service(role),
        build_network_policy(role),
        build_disruption_budget(role, room_to_surge),
    ]
    children = [child for child in candidates if child is not None]
    for child in children:
        child["metadata"].setdefault("labels", {}).update(role_labels(role))
    # kopf.adopt only reads the owner (a kopf.Body at run time; any mapping works). Every child
    # has an explicit name, so it adds the owner reference, namespace and owner's labels but
    # renames nothing; our own labels win over the owner's (it uses setdefault).
    kopf.adopt(children, owner=cast(kopf.Body, owner))
    # adopt appends one shared owner-reference dict to every child: copy each child on its own
    # (one deepcopy of the list would keep the sharing) so editing one never changes another.
    return [copy.deepcopy(child) for child in children]
