"""`kubectl vmrole`: flags anywhere, as kubectl takes them; each command writes only its annotation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.cluster_state import role_object
from tests.support.fake_kube import FakeKube
from vmrole_operator import constants as c
from vmrole_operator.cli import CliError, VMRoleCli, parser, run
from vmrole_operator.kube.api import MERGE_PATCH, PODS, VMROLES, Resource


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


# --- the commands, against the in-memory API ---


class Api:
    """A role `web` with instances web-a and web-b, and a sleep that plays the operator."""

    def __init__(self) -> None:
        self.kube = FakeKube()
        self.kube.put(
            VMROLES, {**role_object(), "status": {"readyReplicas": 2, "image": "x@sha256:" + "a" * 64}}
        )
        for name in ("web-a", "web-b"):
            self.kube.put(PODS, self.pod(name))
        self.on_sleep: list[Any] = []
        self.clock = 0.0
        self.cli = VMRoleCli(self.kube, "ns", sleep=self.sleep, monotonic=lambda: self.clock)

    @staticmethod
    def pod(name: str, ready: bool = True) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "labels": {c.ROLE_LABEL: "web", c.IN_ROTATION_LABEL: "true"},
                "creationTimestamp": "2026-11-28T11:00:00Z",
            },
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }

    def sleep(self, seconds: float) -> None:
        self.clock += seconds
        for act in self.on_sleep:
            act()

    def annotations(self, resource: Resource, name: str) -> dict[str, str]:
        stored = self.kube.stored(resource, "ns", name)
        assert stored is not None
        return dict(stored["metadata"].get("annotations") or {})

    def run(self, *argv: str) -> int:
        return run(self.cli, parser().parse_args(list(argv)))


def test_reimage_named_instances_writes_only_their_annotation(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api()
    assert api.run("reimage", "web", "web-a") == 0
    assert c.REIMAGE_ANNOTATION in api.annotations(PODS, "web-a")
    assert c.REIMAGE_ANNOTATION not in api.annotations(PODS, "web-b")
    assert "pod/web-a: vmrole.dev/reimage=" in capsys.readouterr().out


def test_reimage_all_annotates_the_role_and_waits_for_the_round(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api()

    def operator_replaces_everything() -> None:
        token = api.annotations(VMROLES, "web")[c.REIMAGE_ANNOTATION]
        for name in ("web-a", "web-b"):
            if (old := api.kube.stored(PODS, "ns", name)) is not None:
                api.kube.delete(PODS, "ns", name, old["metadata"]["uid"])
                api.kube.put(PODS, api.pod(name + "2"))
        status = {"readyReplicas": 2, "lastReimage": {"token": token, "startedAt": "t", "completedAt": "t"}}
        api.kube.patch(
            VMROLES, "ns", "web", {"status": status}, content_type=MERGE_PATCH, subresource="status"
        )

    api.on_sleep.append(operator_replaces_everything)
    assert api.run("reimage", "web", "--all", "--wait") == 0
    out = capsys.readouterr().out
    assert "replaced 0/2" in out
    assert "replaced 2/2" in out
    assert "vmrole/web: 2/2 instances ready" in out


def test_reimage_needs_names_or_all_but_not_both() -> None:
    api = Api()
    with pytest.raises(CliError, match="not both"):
        api.run("reimage", "web")
    with pytest.raises(CliError, match="not both"):
        api.run("reimage", "web", "web-a", "--all")


def test_unknown_role_and_foreign_pod_are_errors_that_change_nothing() -> None:
    api = Api()
    api.kube.put(PODS, {**Api.pod("other"), "metadata": {**Api.pod("other")["metadata"], "labels": {}}})
    with pytest.raises(CliError, match='vmrole "db" not found'):
        api.run("busy", "db", "web-a", "--on")
    with pytest.raises(CliError, match='"other" is not an instance of vmrole "web"'):
        api.run("reboot", "web", "other")
    assert [w.verb for w in api.kube.writes] == []


def test_reboot_waits_until_the_same_pod_is_back_in_rotation(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api()

    def operator_reboots() -> None:
        token = api.annotations(PODS, "web-a")[c.REBOOT_ANNOTATION]
        patch = {"metadata": {"annotations": {c.REBOOT_DONE_ANNOTATION: token}}}
        api.kube.patch(PODS, "ns", "web-a", patch, content_type=MERGE_PATCH)

    api.on_sleep.append(operator_reboots)
    assert api.run("reboot", "web", "web-a", "--wait") == 0
    assert "rebooted and back in rotation" in capsys.readouterr().out


def test_a_wait_that_never_ends_times_out() -> None:
    api = Api()
    with pytest.raises(CliError, match="timed out after 3s"):
        api.run("reboot", "web", "web-a", "--wait", "--timeout", "3")


def test_busy_on_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api()
    api.run("busy", "web", "web-b", "--on")
    assert api.annotations(PODS, "web-b")[c.BUSY_ANNOTATION] == "true"
    api.run("busy", "web", "web-b", "--off")
    assert c.BUSY_ANNOTATION not in api.annotations(PODS, "web-b")
    assert "not busy" in capsys.readouterr().out


def test_status_lists_the_instances(capsys: pytest.CaptureFixture[str]) -> None:
    api = Api()
    instances = [
        {
            "name": "web_IN_0",
            "pod": "web-a",
            "state": "ReadyRole",
            "ready": True,
            "restarts": 1,
            "node": "n1",
            "since": "2026-11-28T11:00:00Z",
        }
    ]
    api.kube.patch(
        VMROLES,
        "ns",
        "web",
        {"status": {"instances": instances}},
        content_type=MERGE_PATCH,
        subresource="status",
    )
    api.cli.status("web", now=datetime(2026, 11, 28, 13, 0, tzinfo=UTC))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vmrole/web: image x@sha256:")
    assert lines[1].split() == ["INSTANCE", "POD", "STATE", "READY", "NODE", "SINCE"]
    assert lines[2].split() == ["web_IN_0", "web-a", "ReadyRole", "true", "n1", "2h"]


def test_instances_are_named_by_their_instance_name_or_their_pod() -> None:
    api = Api()
    pod = api.kube.stored(PODS, "ns", "web-b")
    pod["metadata"]["labels"][c.INSTANCE_LABEL] = "web_IN_7"
    api.kube.put(PODS, pod)
    api.run("busy", "web", "web_IN_7", "--on")
    assert api.annotations(PODS, "web-b")[c.BUSY_ANNOTATION] == "true"
    api.run("reimage", "web", "web_IN_7", "web-a")
    assert c.REIMAGE_ANNOTATION in api.annotations(PODS, "web-a")
    assert c.REIMAGE_ANNOTATION in api.annotations(PODS, "web-b")
