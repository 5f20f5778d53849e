"""`kubectl vmrole` argument parsing: common flags before or after the command, like kubectl's."""

from __future__ import annotations

import pytest

from vmrole_operator.cli import parser


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "web", "-n", "team-a"],
        ["-n", "team-a", "status", "web"],
        ["status", "-n", "team-a", "web"],
    ],
)
def test_namespace_flag_anywhere(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert args.command == "status"
    assert args.role == "web"
    assert args.namespace == "team-a"


def test_reimage_instances_all_and_wait() -> None:
    args = parser().parse_args(
        ["reimage", "web", "web-1", "web-2", "--wait", "--kubeconfig", "kc", "--context", "c"]
    )
    assert args.instances == ["web-1", "web-2"]
    assert args.wait is True
    assert args.all is False
    assert (args.kubeconfig, args.context, args.namespace) == ("kc", "c", None)


def test_busy_needs_on_or_off() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["busy", "web", "web-1"])
    assert parser().parse_args(["busy", "web", "web-1", "--off"]).on is False
