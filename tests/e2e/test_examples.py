"""Every manifest in examples/ does what its comment says, applied the way its comment says."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO, kubectl
from .kube import Kube, http_get
from .roles import get_role, instances, wait_available

pytestmark = pytest.mark.usefixtures("operator")

EXAMPLES = REPO / "examples"
TESTED = {
    "web.yaml",
    "reimage-one.yaml",
    "reimage-all.yaml",
    "reboot.yaml",
    "busy.yaml",
    "paused-upgrade.yaml",
    "healing.yaml",
    "settings.yaml",
}


def test_every_example_is_tested_here() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == TESTED


def patch(kind: str, name: str, namespace: str, example: str) -> None:
    kubectl("patch", kind, name, "-n", namespace, "--type", "merge", "--patch-file", str(EXAMPLES / example))


def holder(kube: Kube, namespace: str, role: str, name: str) -> str | None:
    """The pod that holds `name`; None during a takeover (the old holder lets go first)."""
    for pod in instances(kube, namespace, role):
        if (pod["metadata"].get("labels") or {}).get("vmrole.dev/instance") == name:
            return str(pod["metadata"]["name"])
    return None


def test_the_web_role_and_the_instance_requests(kube: Kube, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "web.yaml"))
    wait_available(kube, namespace, "web", ready=3)
    cluster_ip = kube.core.read_namespaced_service("web", namespace).spec.cluster_ip
    kube.wait_for(lambda: http_get(f"http://{cluster_ip}/version") == "1", 30, "the Service answering")

    # busy.yaml: out of rotation, same pod.
    busy = kube.wait_for(lambda: holder(kube, namespace, "web", "web_IN_0"), 60, "web_IN_0 held")
    ip = kube.pod(namespace, busy)["status"]["podIP"]
    patch("pod", busy, namespace, "busy.yaml")
    kube.wait_for(lambda: not kube.endpoint_states(namespace, "web").get(ip), 30, "busy: out of rotation")
    kubectl("annotate", "pod", busy, "-n", namespace, "vmrole.dev/busy-")
    kube.wait_for(lambda: kube.endpoint_states(namespace, "web").get(ip), 30, "back in rotation")

    # reboot.yaml: same pod, restarted once.
    patch("pod", busy, namespace, "reboot.yaml")
    kube.wait_for(
        lambda: kube.pod(namespace, busy)["status"]["containerStatuses"][0]["restartCount"] == 1,
        90,
        "rebooted",
    )
    wait_available(kube, namespace, "web", ready=3)

    # reimage-one.yaml: a new pod, the same name.
    victim = kube.wait_for(lambda: holder(kube, namespace, "web", "web_IN_1"), 60, "web_IN_1 held")
    patch("pod", victim, namespace, "reimage-one.yaml")
    kube.wait_for(
        lambda: holder(kube, namespace, "web", "web_IN_1") not in (None, victim), 120, "web_IN_1 on a new pod"
    )

    # reimage-all.yaml: every pod replaced once, round recorded.
    before = {p["metadata"]["uid"] for p in instances(kube, namespace, "web")}
    patch("vmrole", "web", namespace, "reimage-all.yaml")

    def round_done() -> bool:
        last = (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage") or {}
        return last.get("token") == "round-2026-11-28" and bool(last.get("completedAt"))

    kube.wait_for(round_done, 240, "reimage-all round completed")
    assert before.isdisjoint({p["metadata"]["uid"] for p in instances(kube, namespace, "web")})

    # paused-upgrade.yaml: nothing moves until unpaused, then every instance runs :2.
    patch("vmrole", "web", namespace, "paused-upgrade.yaml")
    kube.wait_for(
        lambda: (
            next(
                c["reason"]
                for c in get_role(kube, namespace, "web")["status"]["conditions"]
                if c["type"] == "Progressing"
            )
            == "RolloutPaused"
        ),
        60,
        "RolloutPaused",
    )
    assert {http_get(f"http://{cluster_ip}/version") for _ in range(5)} == {"1"}
    kubectl(
        "patch",
        "vmrole",
        "web",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"upgrade":{"paused":false}}}',
    )
    kube.wait_for(
        lambda: {http_get(f"http://{cluster_ip}/version") for _ in range(10)} == {"2"}, 240, "only :2"
    )


def test_the_healing_example_reimages_a_crash_looping_instance(kube: Kube, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "healing.yaml"))
    kube.wait_for(
        lambda: int((get_role(kube, namespace, "flaky").get("status") or {}).get("heals") or 0) >= 1,
        180,
        "heal",
    )
    # The heal is recorded in status before it is requested and told: the Event follows.
    kube.wait_for(
        lambda: any(
            e.reason == "Healing"
            for e in kube.core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=flaky"
            ).items
        ),
        30,
        "the Healing Event",
    )


def test_the_settings_example_writes_one_file_per_key(kube: Kube, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "settings.yaml"))
    wait_available(kube, namespace, "configured", ready=2)
    pod = instances(kube, namespace, "configured")[0]["metadata"]["name"]
    assert kubectl("exec", "-n", namespace, pod, "--", "cat", "/etc/vmrole/settings/greeting") == "hello"
    assert kubectl("exec", "-n", namespace, pod, "--", "cat", "/etc/vmrole/settings/log.level") == "info"


def test_examples_are_valid_vmroles_or_patches() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        text = Path(path).read_text()
        assert text.startswith("#"), f"{path.name} says what it is for"
