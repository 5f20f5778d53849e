"""The inline answer file's ConfigMap."""

from __future__ import annotations

from tests.support.role_bodies import minimal_body
from vmrole_operator import constants as c
from vmrole_operator.models import parse_role
from vmrole_operator.specs.answer_file import build_answer_file_configmap

from .roles import example_role


def test_answer_file_configmap() -> None:
    cm = build_answer_file_configmap(example_role())
    assert cm == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "web-answer-file",
            "labels": {c.ROLE_LABEL: "web", c.MANAGED_BY_LABEL: "vmrole-operator"},
        },
        "data": {"unattend.xml": "<unattend/>"},
    }
    assert (
        build_answer_file_configmap(
            parse_role(minimal_body(setup={"command": ["s"], "answerFile": {"secretName": "s"}}))
        )
        is None
    )
    assert build_answer_file_configmap(parse_role(minimal_body())) is None
