"""Labels and selectors of the objects made for a role: who selects which instances, and why."""

from __future__ import annotations

from .. import constants as c
from ..models import VMRole


def role_labels(role: VMRole) -> dict[str, str]:
    """Labels of every object made for the role: the selector label plus ownership."""
    return {c.ROLE_LABEL: role.name, c.MANAGED_BY_LABEL: c.MANAGED_BY}


def every_instance_selector(role: VMRole) -> dict[str, str]:
    """What the internal Service and the policy select: every instance, in rotation or not."""
    return {c.ROLE_LABEL: role.name}


def rotation_selector(role: VMRole) -> dict[str, str]:
    """What the input Service selects: instances the operator has not taken out of rotation. Among
    those, the EndpointSlice controller lists as ready only pods the kubelet reports Ready."""
    return {c.ROLE_LABEL: role.name, c.IN_ROTATION_LABEL: "true"}


def pool_selector(role: VMRole) -> dict[str, str]:
    """What the Deployment selects: a reimage drops IN_POOL_LABEL so the ReplicaSet replaces the
    victim at once while the victim still serves (surge first)."""
    return {c.ROLE_LABEL: role.name, c.IN_POOL_LABEL: "true"}
