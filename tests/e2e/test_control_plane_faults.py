"""Control-plane faults in the middle of an operation: a component of the cluster restarted with its
flags and data (`make cluster-restart`), or the operator cut off from the API server.

Each time the operation completes within 60 s of the component serving again, every instance is
replaced exactly once (the API server's audit log counts the deletions), no request or instance name
is lost, and the operator logs no traceback: a control plane away for a moment is expected."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.operator_process import OperatorProcess
from tests.support.tcp_proxy import CuttableProxy

from .conftest import E2E_OPERATOR_LABEL, REPO, create_namespace, kubectl
from .faults import (
    LOCAL_ONLY,
    done_in_time,
    left_pool,
    no_tracebacks,
    record,
    replaced_once,
    restart_component,
    uids,
)
from .kube import Kube
from .roles import get_role, instances, observed_after, patch_role, ready_role, settled
from .traffic import EndpointSampler, instance_deletes

pytestmark = [pytest.mark.serial, pytest.mark.usefixtures("operator")]

CUT_S = 20.0


def _names(kube: Kube, namespace: str) -> list[str]:
    return sorted(
        i["name"] for i in (get_role(kube, namespace, "web").get("status") or {}).get("instances", [])
    )


def _names_kept(kube: Kube, namespace: str) -> None:
    """Both names still held (the status may list the victim a moment longer: waited for)."""
    kube.wait_for(lambda: _names(kube, namespace) == ["web_IN_0", "web_IN_1"], 30, "web_IN_0 and web_IN_1")


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in pod["status"]["containerStatuses"] if s["name"] == "role"))


@LOCAL_ONLY
def test_api_server_restarted_during_a_reimage_all(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ready_role(kube, namespace, 2, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    originals = uids(kube, namespace)
    offset = operator.log_size()
    kubectl("annotate", "vmrole", "web", "-n", namespace, "vmrole.dev/reimage=round-1")
    kube.wait_for(
        lambda: (
            (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage", {}).get("token")
            == "round-1"
        ),
        30,
        "round-1 started",
    )
    back = restart_component("kube-apiserver")

    def done() -> bool:
        last = (get_role(kube, namespace, "web").get("status") or {}).get("lastReimage") or {}
        return bool(last.get("completedAt")) and settled(kube, namespace, 2, set(originals))

    kube.wait_for(done, 120, "round-1 completed, every instance replaced")
    done_in_time("kube-apiserver restarted during reimage-all", back, time.monotonic())
    replaced_once(namespace, originals)
    _names_kept(kube, namespace)
    no_tracebacks(operator, offset)


@LOCAL_ONLY
def test_etcd_restarted_during_a_single_reimage(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ready_role(kube, namespace, 2, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    originals = uids(kube, namespace)
    victim_uid, victim = next(iter(originals.items()))
    offset = operator.log_size()
    kubectl("annotate", "pod", "-n", namespace, victim, "vmrole.dev/reimage=e2e-etcd")
    kube.wait_for(lambda: left_pool(kube, namespace, victim), 30, "the reimage started")
    back = restart_component("etcd")
    kube.wait_for(lambda: settled(kube, namespace, 2, {victim_uid}), 120, "the reimage done")
    done_in_time("etcd restarted during a single reimage", back, time.monotonic())
    replaced_once(namespace, {victim_uid: victim})
    assert set(originals) - {victim_uid} <= set(uids(kube, namespace))
    _names_kept(kube, namespace)
    no_tracebacks(operator, offset)


@LOCAL_ONLY
def test_kubelet_restarted_with_a_role_at_rest(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    ready_role(kube, namespace, 2)
    before = {p["metadata"]["uid"]: _main(p)["containerID"] for p in instances(kube, namespace, "web")}
    offset = operator.log_size()
    with EndpointSampler(kube, namespace, "web") as sampler:
        back = restart_component("kubelet")
        kube.wait_for(
            lambda: sum(kube.endpoint_states(namespace, "web").values()) == 2,
            60,
            "every endpoint ready again",
        )
        ready_again = time.monotonic()
    # The operator has seen everything up to now: only then does "nothing replaced" mean anything.
    observed_after(kube, namespace, "web")
    after = {p["metadata"]["uid"]: _main(p)["containerID"] for p in instances(kube, namespace, "web")}
    assert after == before  # the same pods, and in them the same containers: nothing restarted
    assert not instance_deletes(namespace)
    assert (get_role(kube, namespace, "web").get("status") or {}).get("readyReplicas") == 2
    record(
        "kubelet restarted at rest",
        endpoints_ready_after_back_s=round(ready_again - back, 1),
        fewest_ready_endpoints=min(sampler.ready_counts(), default=2),
    )
    no_tracebacks(operator, offset)


@LOCAL_ONLY
def test_kubelet_restarted_during_a_reboot(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    ready_role(kube, namespace, 1)
    pod = instances(kube, namespace, "web")[0]
    name, uid, ip = pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"]["podIP"]
    restarts = _main(pod)["restartCount"]
    offset = operator.log_size()
    kubectl("annotate", "pod", "-n", namespace, name, "vmrole.dev/reboot=e2e-kubelet")
    kube.wait_for(
        lambda: kube.pod(namespace, name)["metadata"]["labels"].get("vmrole.dev/in-rotation") == "reboot",
        30,
        "the reboot's drain started",
    )
    back = restart_component("kubelet")

    def rebooted() -> bool:
        now = kube.pod(namespace, name)
        return (
            _main(now)["restartCount"] > restarts
            and now["metadata"]["annotations"].get("vmrole.dev/reboot-done") == "e2e-kubelet"
            and bool(kube.endpoint_states(namespace, "web").get(ip))
        )

    kube.wait_for(rebooted, 120, "rebooted and back in rotation")
    done_in_time("kubelet restarted during a reboot", back, time.monotonic())
    observed_after(kube, namespace, "web")
    after = kube.pod(namespace, name)
    assert after["metadata"]["uid"] == uid
    assert _main(after)["restartCount"] == restarts + 1  # restarted exactly once
    assert not instance_deletes(namespace)
    no_tracebacks(operator, offset)


@LOCAL_ONLY
def test_controller_manager_restarted_during_an_image_upgrade(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ready_role(kube, namespace, 2, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    originals = uids(kube, namespace)
    offset = operator.log_size()
    patch_role(kube, namespace, "web", {"spec": {"image": "localhost/vmrole-test/web:2"}})

    def rolling() -> bool:
        status = get_role(kube, namespace, "web").get("status") or {}
        template = kube.apps.read_namespaced_deployment("web", namespace).spec.template.spec
        return status.get("specImage", "").endswith(":2") and template.containers[0].image == status["image"]

    kube.wait_for(rolling, 60, "the new image pinned and in the Deployment")
    back = restart_component("kube-controller-manager")

    def upgraded() -> bool:
        status = get_role(kube, namespace, "web").get("status") or {}
        return settled(kube, namespace, 2, set(originals)) and all(
            p["spec"]["containers"][0]["image"] == status["image"] for p in instances(kube, namespace, "web")
        )

    kube.wait_for(upgraded, 120, "every instance on :2")
    done_in_time("kube-controller-manager restarted during an image upgrade", back, time.monotonic())
    replaced_once(namespace, originals)
    _names_kept(kube, namespace)
    no_tracebacks(operator, offset)


@pytest.fixture
def proxy(kube: Kube) -> Iterator[CuttableProxy]:
    """Between a dedicated operator and the API server: its own kubeconfig points here."""
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    with CuttableProxy((host.strip("[]"), int(port))) as p:
        yield p


@pytest.fixture
def proxied(kube: Kube, proxy: CuttableProxy) -> Iterator[tuple[OperatorProcess, str]]:
    """An operator of its own that reaches the API server only through `proxy`, serving one
    namespace that the session's operator does not watch; the operator and that namespace."""
    ident = f"px{uuid.uuid4().hex[:4]}"
    logs = REPO / ".cluster" / "logs"
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{proxy.address}"
    kubeconfig = logs / f"kubeconfig-{ident}"
    kubeconfig.write_text(yaml.safe_dump(config))
    webhook = f"vmrole-operator-{ident}"
    operator = OperatorProcess(
        logs / f"operator-{ident}.log",
        namespaces=f"e2e-{ident}-*",
        webhook=(webhook, f"{E2E_OPERATOR_LABEL}={ident}"),
        kubeconfig=kubeconfig,
    )
    operator.start()
    namespace = create_namespace(kube, f"e2e-{ident}-", **{E2E_OPERATOR_LABEL: ident})
    try:
        yield operator, namespace
    finally:
        operator.stop()
        kube.core.delete_namespace(namespace, propagation_policy="Background")
        kubectl("delete", "mutatingwebhookconfiguration", webhook, "--ignore-not-found")
        kubeconfig.unlink(missing_ok=True)


def test_operator_cut_off_from_the_api_server_for_20s_mid_reimage(
    kube: Kube, proxy: CuttableProxy, proxied: tuple[OperatorProcess, str]
) -> None:
    operator, namespace = proxied
    ready_role(kube, namespace, 2, upgrade={"maxUnavailable": 1, "maxSurge": 1})
    assert proxy.connections > 0  # the operator really goes through the proxy
    originals = uids(kube, namespace)
    victim_uid, victim = next(iter(originals.items()))
    offset = operator.log_size()
    kubectl("annotate", "pod", "-n", namespace, victim, "vmrole.dev/reimage=e2e-cut")
    kube.wait_for(lambda: left_pool(kube, namespace, victim), 30, "the reimage started")
    proxy.cut()
    time.sleep(CUT_S)
    # Cut off, the operator cannot have finished: the victim is still there.
    assert kube.pod(namespace, victim)["metadata"]["uid"] == victim_uid
    proxy.restore()
    back = time.monotonic()
    kube.wait_for(lambda: settled(kube, namespace, 2, {victim_uid}), 120, "the reimage done")
    done_in_time("operator cut off for 20 s during a single reimage", back, time.monotonic())
    replaced_once(namespace, {victim_uid: victim})
    _names_kept(kube, namespace)
    no_tracebacks(operator, offset)
