"""The setup's answer file: an inline one becomes a ConfigMap; every source becomes a volume."""

from __future__ import annotations

from typing import Any

from .. import constants as c
from ..models import VMRole
from .labels import role_labels


def answer_file_configmap_name(role: VMRole) -> str:
    return f"{role.name}{c.ANSWER_FILE_CONFIGMAP_SUFFIX}"


def answer_file_volume(role: VMRole) -> dict[str, Any] | None:
    answer = role.spec.setup.answerFile if role.spec.setup is not None else None
    if answer is None:
        return None
    if answer.secretName is not None:
        return {"name": c.ANSWER_FILE_VOLUME, "secret": {"secretName": answer.secretName}}
    name = answer.configMapName if answer.configMapName is not None else answer_file_configmap_name(role)
    return {"name": c.ANSWER_FILE_VOLUME, "configMap": {"name": name}}


def build_answer_file_configmap(role: VMRole) -> dict[str, Any] | None:
    """ConfigMap `<name>-answer-file` holding an inline answer file (spec.setup.answerFile.data)."""
    answer = role.spec.setup.answerFile if role.spec.setup is not None else None
    if answer is None or answer.data is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": answer_file_configmap_name(role), "labels": role_labels(role)},
        "data": dict(answer.data),
    }
