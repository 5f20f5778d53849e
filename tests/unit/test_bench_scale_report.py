"""The scale benchmark's summaries: pairs per size, per-role CPU, `scale_runs`, size-keyed targets."""

from __future__ import annotations

from typing import Any

from bench.report import target_status
from bench.run import parse_pairs
from bench.scale import SIZE_KEYS, per_role, scale_runs


def test_pairs_per_size_parse() -> None:
    assert parse_pairs("1000:3,10000:1") == {1000: 3, 10000: 1}
    assert parse_pairs("5") == {5: 1}
    assert parse_pairs("") == {}


def test_cpu_per_role_divides_each_process() -> None:
    cpu = {"cpu_s": {"operator": 63.0, "kube-apiserver": 124.0}}
    assert per_role(cpu, 1000) == {"operator": 0.063, "kube-apiserver": 0.124}
    assert per_role({}, 10) == {}


def _run(roles: int, **extra: Any) -> dict[str, Any]:
    return {
        "roles": roles,
        "seconds_to_available": 80.0,
        "ratio_median": 1.05,
        "pairs": 3,
        "peak_rss_mib": 140.0,
        "resync_seconds": 20.0,
        "resync_writes": 0,
        "cpu_s_per_role": {"operator": 0.06, "kube-apiserver": 0.12},
        "floor": {"seconds_to_available": 76.0},
        **extra,
    }


def test_scale_runs_has_one_line_per_size_with_the_issue_s_keys() -> None:
    lines = scale_runs({"runs": [_run(1000), _run(10000, floor=None)]})
    assert [line["roles"] for line in lines] == [1000, 10000]
    first = lines[0]
    for key in (
        "seconds_to_available",
        "floor_seconds",
        "peak_rss_mib",
        "restart_settle_seconds",
        "resync_writes",
    ):
        assert key in first
    assert first["floor_seconds"] == 76.0
    assert first["restart_settle_seconds"] == 20.0
    assert first["operator_cpu_s_per_role"] == 0.06
    assert first["apiserver_cpu_s_per_role"] == 0.12
    assert lines[1]["floor_seconds"] is None


def test_size_keyed_targets_are_judged_and_missing_sizes_say_so() -> None:
    scale = {f"{key}_1000": _run(1000)[key] for key in SIZE_KEYS}
    scale["peak_rss_mib_1000"] = 162.8
    status = target_status({"scale": scale})
    assert status["scale.ratio_median_1000"].startswith("met")
    assert status["scale.peak_rss_mib_1000"] == "missed (162.8 <= 150)"
    assert status["scale.seconds_to_available_10000"] == "not measured"
