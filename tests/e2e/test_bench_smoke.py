"""Every benchmark of `make bench`, with tiny parameters, so the scripts cannot rot.

Nothing here is a timed test: the numbers are not compared with targets. What is asserted is that each
benchmark ran both arms on the real cluster and produced numbers of the right shape, and that the
result files and plots were written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench import run as bench_run
from bench.report import REQUIRED_KEYS

from .kube import Kube

# Its operator and kwok nodes share the cluster with nothing else, and its scale arm loads the machine.
pytestmark = pytest.mark.serial


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.fixture(scope="module")
def results(kube: Kube, crd: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    return bench_run.main(["--smoke", "--out", str(out)]), out


def test_result_files_hold_every_required_key(results: tuple[dict[str, Any], Path]) -> None:
    data, out = results
    latest = json.loads((out / "latest.json").read_text())
    assert latest["smoke"] is True
    for section, keys in REQUIRED_KEYS.items():
        for key in keys:
            assert key in latest[section], f"{section}.{key} missing from latest.json"
            value = latest[section][key]
            assert value is None or isinstance(value, int | float), f"{section}.{key} = {value!r}"
            if value is None:
                assert latest[section]["why_null"][key], f"{section}.{key} is null without a reason"
    stem = f"{data['date']}-smoke"
    for suffix in ("latency", "rss"):
        png = out / f"{stem}-{suffix}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{stem}.json").exists()


def test_reimage_latency_ran_both_arms(results: tuple[dict[str, Any], Path]) -> None:
    reimage = results[0]["reimage"]
    assert "skipped" not in reimage, reimage.get("skipped")
    assert "operator_unavailable" not in reimage, reimage["operator_unavailable"]
    assert _positive(reimage["floor_median_s"]), "the plain pod-delete baseline produced no latency"
    assert _positive(reimage["operator_median_s"])
    assert _positive(reimage["ratio_median"])
    share = reimage["operator_share_samples"]
    assert share, "the audit log showed no operator DELETE after the reimage annotation"
    assert share[0]["annotation_to_delete_s"] > 0
    assert share[0]["annotation_to_first_write_s"] >= 0


def test_apply_to_available_ran_every_arm(results: tuple[dict[str, Any], Path]) -> None:
    apply = results[0]["apply"]
    assert "skipped" not in apply, apply.get("skipped")
    for arm in ("operator", "floor", "operator_digest"):
        assert apply[arm]["n"] == 1, arm
        assert _positive(apply[arm]["median"]), arm
    assert _positive(apply["ratio_median"])


def test_dropped_requests_counted_for_both_arms(results: tuple[dict[str, Any], Path]) -> None:
    dropped = results[0]["dropped"]
    assert "skipped" not in dropped, dropped.get("skipped")
    assert "operator_unavailable" not in dropped, dropped["operator_unavailable"]
    for arm in ("operator", "baseline", "rolling_operator", "rolling_baseline"):
        total, failed = dropped[f"{arm}_total"], dropped[f"{arm}_failed"]
        assert _positive(total), f"{arm}: no requests were sent"
        assert isinstance(failed, int), arm
        assert 0 <= failed <= total, arm
    # The load generator really hit the Service: most requests succeeded even on the baseline.
    assert dropped["baseline_failed"] < dropped["baseline_total"] / 2


def test_scale_on_kwok_measured_start_memory_and_writes(results: tuple[dict[str, Any], Path]) -> None:
    scale = results[0]["scale"]
    assert "skipped" not in scale, scale.get("skipped")
    assert scale["roles"] == 5
    assert not scale["not_run"]
    assert _positive(scale["seconds_to_available"])
    assert _positive(scale["peak_rss_mib"])
    run = scale["runs"][0]
    # A cold start writes (a Deployment per role at least); the audit log must have seen that.
    assert run["writes_by_kind"].get("patch deployments", 0) >= 5, run["writes_by_kind"]
    assert isinstance(scale["resync_writes"], int)
    assert run["rss_samples"], "no RSS samples"
    assert _positive(run["floor"]["seconds_to_available"]), "the plain-Deployment floor did not run"
    # Alternating pairs (the smoke run asks for two at 5 roles), each with its own ratio.
    assert run["pairs"] == 2
    assert len(run["seconds_to_available_runs"]) == 2
    assert len(run["pair_ratios"]) == 2
    assert all(_positive(r) for r in run["pair_ratios"])
    assert _positive(run["cpu_s_per_role"]["operator"])
    [line] = results[0]["scale_runs"]
    assert line["roles"] == 5
    assert line["floor_seconds"] == run["floor"]["seconds_to_available"]
    assert line["resync_writes"] == scale["resync_writes"]


def test_busy_ran_both_arms(results: tuple[dict[str, Any], Path]) -> None:
    busy = results[0]["busy"]
    assert "skipped" not in busy, busy.get("skipped")
    for key in ("operator_out", "floor_out", "operator_back", "floor_back"):
        assert _positive(busy[key]["median"]), key
    assert _positive(busy["out_ratio_median"])
