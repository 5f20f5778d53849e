"""A settings change: recorded first, announced once, then in place, rolling reboots, or a rollout."""

from __future__ import annotations

from typing import Any

from tests.support.cluster_state import instance_pod, observe, role_object, stored_role
from tests.support.fake_clock import FakeClock
from tests.support.fake_kube import FakeKube
from vmrole_operator import constants as c
from vmrole_operator.control.role_reader import RoleReader
from vmrole_operator.control.role_reconciler import RoleReconciler
from vmrole_operator.control.role_workers import Work
from vmrole_operator.control.settings_rollout import reboots_due, settings_record, settings_token
from vmrole_operator.kube.api import CONFIGMAPS, DEPLOYMENTS, MERGE_PATCH, PODS, VMROLES
from vmrole_operator.models import parse_role

DIGEST_IMAGE = "localhost/vmrole-test/web@sha256:" + "c" * 64


class Operator:
    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.events: list[str] = []
        post = lambda obj, type_, reason, message: self.events.append(reason)  # noqa: E731
        self.reconciler = RoleReconciler(kube, RoleReader(kube), "pause:test", post, FakeClock(kube.now))

    def run(self, work: Work = Work.RECONCILE) -> None:
        self.reconciler.run("ns", "web", work, observe(self.kube, "ns", "web"))


def make(change: str, instances: int = 3, max_unavailable: int = 1) -> tuple[FakeKube, Operator]:
    kube = FakeKube()
    spec = {"image": DIGEST_IMAGE, "instances": instances, "settings": {"greeting": "hello"}}
    spec |= {"settingsChange": change, "upgrade": {"maxUnavailable": max_unavailable}}
    kube.put(VMROLES, role_object(**spec))
    op = Operator(kube)
    op.run()
    for n in range(instances):
        instance_pod(kube, stored_role(kube), f"web-{n}", ip=f"10.244.0.{n + 10}")
    op.run(Work.STATUS)
    return kube, op


def change_settings(kube: FakeKube, value: str) -> None:
    kube.now = kube.now.replace(minute=30)
    kube.patch(VMROLES, "ns", "web", {"spec": {"settings": {"greeting": value}}}, content_type=MERGE_PATCH)


def reboot_tokens(kube: FakeKube) -> dict[str, str | None]:
    return {
        name: (kube.stored(PODS, "ns", name)["metadata"].get("annotations") or {}).get(c.REBOOT_ANNOTATION)
        for name in ("web-0", "web-1", "web-2")
    }


def test_in_place_rewrites_the_settings_file_and_restarts_nothing() -> None:
    kube, op = make("InPlace")
    assert kube.stored(CONFIGMAPS, "ns", "web-settings")["data"] == {"greeting": "hello"}
    first = stored_role(kube)["status"]["settings"]
    assert first["changedAt"] == stored_role(kube)["metadata"]["creationTimestamp"]
    change_settings(kube, "hi")
    op.reconciler.clock = FakeClock(kube.now)
    op.run()
    assert kube.stored(CONFIGMAPS, "ns", "web-settings")["data"] == {"greeting": "hi"}
    second = stored_role(kube)["status"]["settings"]
    assert second["hash"] != first["hash"]
    assert second["changedAt"] == "2026-11-28T12:30:00Z"
    assert op.events.count("SettingsChanged") == 1
    assert set(reboot_tokens(kube).values()) == {None}
    template = kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["template"]["metadata"]
    assert c.SETTINGS_ROUND_ANNOTATION not in (template.get("annotations") or {})


def test_reimage_puts_the_settings_into_the_pod_template() -> None:
    kube, op = make("Reimage")
    before = kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["template"]["metadata"]["annotations"]
    change_settings(kube, "hi")
    op.run()
    after = kube.stored(DEPLOYMENTS, "ns", "web")["spec"]["template"]["metadata"]["annotations"]
    assert before[c.SETTINGS_ROUND_ANNOTATION] != after[c.SETTINGS_ROUND_ANNOTATION]


def test_reboot_restarts_instances_started_before_the_change_max_unavailable_at_a_time() -> None:
    kube, op = make("Reboot")
    change_settings(kube, "hi")
    op.reconciler.clock = FakeClock(kube.now)
    op.run()
    token = settings_token(stored_role(kube)["status"]["settings"]["hash"])
    assert reboot_tokens(kube) == {"web-0": token, "web-1": None, "web-2": None}
    op.run(Work.STATUS)  # web-0 still rebooting: nobody else yet
    assert reboot_tokens(kube)["web-1"] is None

    # The reboot is done: recorded on the pod, back in rotation.
    pod = kube.stored(PODS, "ns", "web-0")
    pod["metadata"]["annotations"] |= {c.REBOOT_DONE_ANNOTATION: token, c.REBOOT_RESTARTS_ANNOTATION: "0"}
    pod["status"]["containerStatuses"][0]["restartCount"] = 1
    kube.put(PODS, pod)
    op.run(Work.STATUS)
    assert reboot_tokens(kube) == {"web-0": token, "web-1": token, "web-2": None}


def test_instances_started_after_the_change_are_not_rebooted() -> None:
    role = parse_role(role_object(settingsChange="Reboot", settings={"a": "b"}))
    record = {"hash": "h", "changedAt": "2026-11-28T12:00:00Z"}

    def pod(name: str, created: str, **annotations: str) -> dict[str, Any]:
        kube = FakeKube()
        made = instance_pod(
            kube, role_object(), name, annotations=annotations, labels={c.IN_ROTATION_LABEL: "true"}
        )
        made["metadata"]["creationTimestamp"] = created
        return made

    old = pod("old", "2026-11-28T11:00:00Z")
    new = pod("new", "2026-11-28T12:00:05Z")
    done = pod("done", "2026-11-28T11:00:00Z", **{c.REBOOT_DONE_ANNOTATION: settings_token("h")})
    assert reboots_due(role, [old, new, done], record) == [old]
    assert reboots_due(parse_role(role_object()), [old], record) == []  # InPlace never reboots


def test_the_first_record_dates_from_the_roles_creation() -> None:
    role = parse_role(
        {**role_object(), "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    )
    first = settings_record(role, None, FakeKube().now)
    assert first["changedAt"] == "2026-01-01T00:00:00Z"
    assert settings_record(role, first, FakeKube().now) == first
