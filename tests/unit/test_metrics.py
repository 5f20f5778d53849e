"""The metrics API, read back from what a Prometheus scrape gets (the default registry's text output)."""

from __future__ import annotations

import socket
import urllib.request
import uuid

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vmrole_operator import metrics
from vmrole_operator.state.instance_state import InstanceState


def scrape(text: str | None = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Sample name and labels -> value, parsed from the exposition format."""
    text = text if text is not None else generate_latest(REGISTRY).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def unique_role() -> tuple[str, str]:
    return f"ns-{uuid.uuid4().hex[:6]}", f"role-{uuid.uuid4().hex[:6]}"


def test_reconciles_counted_per_role_and_result_with_duration() -> None:
    ns, role = unique_role()
    before = scrape()
    metrics.observe_reconcile(ns, role, 0.03, "succeeded")
    metrics.observe_reconcile(ns, role, 0.2, "succeeded")
    metrics.observe_reconcile(ns, role, 7.0, "failed")
    after = scrape()
    assert sample(after, "vmrole_reconciles_total", namespace=ns, role=role, result="succeeded") == 2
    assert sample(after, "vmrole_reconciles_total", namespace=ns, role=role, result="failed") == 1

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("vmrole_reconcile_duration_seconds_count", result="succeeded") == 2
    assert delta("vmrole_reconcile_duration_seconds_sum", result="succeeded") == pytest.approx(0.23)
    assert delta("vmrole_reconcile_duration_seconds_bucket", result="succeeded", le="0.05") == 1
    assert delta("vmrole_reconcile_duration_seconds_bucket", result="failed", le="5.0") == 0
    assert delta("vmrole_reconcile_duration_seconds_bucket", result="failed", le="10.0") == 1


def test_timed_reconcile_records_success_and_failure_and_reraises() -> None:
    ns, role = unique_role()
    with metrics.timed_reconcile(ns, role):
        pass
    with pytest.raises(RuntimeError, match="boom"), metrics.timed_reconcile(ns, role):
        raise RuntimeError("boom")
    after = scrape()
    assert sample(after, "vmrole_reconciles_total", namespace=ns, role=role, result="succeeded") == 1
    assert sample(after, "vmrole_reconciles_total", namespace=ns, role=role, result="failed") == 1


def test_every_action_and_result_is_exported_from_the_start_and_counts_once() -> None:
    before = scrape()
    for action in ("reimage", "reboot", "heal", "rotation"):
        for result in ("succeeded", "failed", "refused"):
            assert ("vmrole_actions_total", frozenset({("action", action), ("result", result)})) in before
    metrics.count_action("reimage", "succeeded")
    metrics.count_action("reimage", "succeeded")
    metrics.count_action("heal", "refused")
    after = scrape()

    def delta(action: str, result: str) -> float:
        return sample(after, "vmrole_actions_total", action=action, result=result) - sample(
            before, "vmrole_actions_total", action=action, result=result
        )

    assert delta("reimage", "succeeded") == 2
    assert delta("heal", "refused") == 1
    assert delta("reboot", "succeeded") == 0
    assert delta("reimage", "failed") == 0


def test_instance_states_per_role_zero_filled_and_replaced_on_each_call() -> None:
    ns, role = unique_role()
    metrics.set_instance_states(ns, role, {"ReadyRole": 2, "StartingRole": 1})
    first = scrape()
    assert sample(first, "vmrole_instances", namespace=ns, role=role, state="ReadyRole") == 2
    assert sample(first, "vmrole_instances", namespace=ns, role=role, state="StartingRole") == 1
    zeros = [s for s in metrics.INSTANCE_STATES if s not in ("ReadyRole", "StartingRole")]
    for state in zeros:
        assert (
            "vmrole_instances",
            frozenset({("namespace", ns), ("role", role), ("state", state)}),
        ) in first

    metrics.set_instance_states(ns, role, {"ReadyRole": 3, "SomethingNew": 1})
    metrics.set_instance_states(ns, role, {"ReadyRole": 3})
    second = scrape()
    assert sample(second, "vmrole_instances", namespace=ns, role=role, state="ReadyRole") == 3
    assert sample(second, "vmrole_instances", namespace=ns, role=role, state="StartingRole") == 0
    assert not [k for k in second if ("state", "SomethingNew") in k[1] and ("role", role) in k[1]]


def test_forget_role_removes_its_series_and_leaves_others() -> None:
    ns, role = unique_role()
    other_ns, other = unique_role()
    metrics.set_instance_states(ns, role, {"ReadyRole": 1, "Odd": 1})
    metrics.observe_reconcile(ns, role, 0.1, "succeeded")
    metrics.set_instance_states(other_ns, other, {"ReadyRole": 1})
    metrics.forget_role(ns, role)
    metrics.forget_role(ns, role)  # a second delete event is harmless
    after = scrape()
    assert not [k for k in after if ("role", role) in k[1]]
    assert sample(after, "vmrole_instances", namespace=other_ns, role=other, state="ReadyRole") == 1


def test_vocabulary_matches_the_instance_states() -> None:
    assert set(metrics.INSTANCE_STATES) == {s.value for s in InstanceState}


def test_metrics_server_serves_the_registry() -> None:
    ns, role = unique_role()
    metrics.set_instance_states(ns, role, {"ReadyRole": 4})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.start_metrics_server(port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        body = response.read().decode()
    assert sample(scrape(body), "vmrole_instances", namespace=ns, role=role, state="ReadyRole") == 4


def test_each_named_instance_says_whether_it_is_in_rotation() -> None:
    metrics.set_instances_ready("ns-i", "web", {"web_IN_0": True, "web_IN_1": False})

    def value(name: str) -> float | None:
        return REGISTRY.get_sample_value(
            "vmrole_instance_ready", {"namespace": "ns-i", "role": "web", "instance": name}
        )

    assert (value("web_IN_0"), value("web_IN_1")) == (1.0, 0.0)
    metrics.set_instances_ready("ns-i", "web", {"web_IN_0": True})
    assert value("web_IN_1") is None  # scaled away: its series goes
    metrics.forget_role("ns-i", "web")
    assert value("web_IN_0") is None
