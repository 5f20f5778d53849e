"""The run's output: a markdown table on stdout, `<out>/<date>.json` and `latest.json`, and PNG plots."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .common import REPO

# Keys latest.json always has (numbers, or null when not measured, with the reason under "why_null").
REQUIRED_KEYS = {
    "reimage": ["ratio_median", "operator_median_s", "floor_median_s"],
    "apply": ["ratio_median", "tag_ratio_median", "ratio_median_digest"],
    "busy": ["out_ratio_median", "back_ratio_median"],
    "dropped": ["operator_failed", "operator_total", "baseline_failed", "baseline_total"],
    "scale": ["roles", "seconds_to_available", "peak_rss_mib", "resync_writes"],
}

TARGETS = {
    "reimage.ratio_median": ("<=", 1.15),
    "apply.ratio_median_digest": ("<=", 1.10),
    "apply.tag_ratio_median": ("<=", 1.5),
    "dropped.operator_failed": ("<=", 0),
    "dropped.rolling_operator_failed": ("<=", 0),
    "scale.seconds_to_available": ("<=", 60),
    "scale.peak_rss_mib": ("<=", 150),
    "scale.resync_writes": ("<=", 0),
    # At scale: 1,000 and 10,000 roles (`--scale-sizes 1000,10000`; the first is the default run).
    "scale.ratio_median_1000": ("<=", 1.1),
    "scale.peak_rss_mib_1000": ("<=", 150),
    "scale.seconds_to_available_10000": ("<=", 600),
    "scale.ratio_median_10000": ("<=", 1.2),
    "scale.resync_seconds_10000": ("<=", 120),
    "scale.resync_writes_10000": ("<=", 0),
    "scale.peak_rss_mib_10000": ("<=", 500),
}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    with_git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    info["git"] = with_git.stdout.strip() or None
    return info


def fill_required(results: dict[str, Any]) -> None:
    """Every required key present: a benchmark that did not run or could not measure a figure gets null
    and a reason under `why_null`."""
    for section, keys in REQUIRED_KEYS.items():
        block = results.setdefault(section, {})
        why = block.setdefault("why_null", {})
        for key in keys:
            if block.get(key) is None:
                block[key] = None
                why.setdefault(
                    key, block.get("operator_unavailable") or block.get("skipped") or "not measured"
                )
        if not why:
            del block["why_null"]


def target_status(results: dict[str, Any]) -> dict[str, str]:
    out = {}
    for path, (op, limit) in TARGETS.items():
        section, key = path.split(".")
        value = (results.get(section) or {}).get(key)
        if value is None:
            out[path] = "not measured"
        else:
            met = value <= limit if op == "<=" else value >= limit
            out[path] = f"{'met' if met else 'missed'} ({value} {op} {limit})"
    return out


def _s(value: Any, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _mp(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("median") is None:
        return "n/a"
    return f"{stats['median']:.2f} / {stats['p90']:.2f} s"


def markdown(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    targets = target_status(results)
    r = results.get("reimage") or {}
    if r and not r.get("skipped"):
        n = r.get("trials_per_arm")
        rows.append(
            (
                f"Reimage one instance → replacement a ready endpoint, median / p90 ({n} trials each)",
                _mp(r.get("operator")),
                _mp(r.get("floor")) + " (pod delete)",
                f"{_s(r.get('ratio_median'), '')} / {_s(r.get('ratio_p90'), '')}",
                targets["reimage.ratio_median"],
            )
        )
        rows.append(
            (
                "… operator's share: annotation → its DELETE (apiserver clock), median / p90",
                _mp(r.get("operator_share")),
                "",
                "",
                "",
            )
        )
    a = results.get("apply") or {}
    if a and not a.get("skipped"):
        n = a.get("trials_per_arm")
        rows.append(
            (
                f"Apply → {a.get('instances')} instances in rotation, tag image, median / p90 ({n} trials)",
                _mp(a.get("operator")),
                _mp(a.get("floor")) + " (Deployment + Service)",
                f"{_s(a.get('tag_ratio_median'), '')} / {_s(a.get('ratio_p90'), '')}",
                targets["apply.tag_ratio_median"],
            )
        )
        rows.append(
            (
                "… same, digest image (no resolver pod)",
                _mp(a.get("operator_digest")),
                "",
                _s(a.get("ratio_median_digest"), ""),
                targets["apply.ratio_median_digest"],
            )
        )
    b = results.get("busy") or {}
    if b and not b.get("skipped"):
        n = b.get("trials_per_arm")
        for phase, what in (("out", "busy on → endpoint not ready"), ("back", "busy off → ready again")):
            rows.append(
                (
                    f"Busy: {what}, median / p90 ({n} trials each)",
                    _mp(b.get(f"operator_{phase}")),
                    _mp(b.get(f"floor_{phase}")) + " (label flip)",
                    _s(b.get(f"{phase}_ratio_median"), ""),
                    "",
                )
            )
    d = results.get("dropped") or {}
    if d and not d.get("skipped"):
        single = d.get("single") or {}
        rows.append(
            (
                f"Failed / total requests, {single.get('replacements_per_arm')} single replacements at "
                f"{d.get('rate_per_s')} req/s",
                f"{d.get('operator_failed', 'n/a')} / {d.get('operator_total', 'n/a')} (reimage)",
                f"{d.get('baseline_failed')} / {d.get('baseline_total')} (pod delete)",
                "",
                targets["dropped.operator_failed"],
            )
        )
        rows.append(
            (
                "Failed / total requests, replace every instance (rolling)",
                f"{d.get('rolling_operator_failed')} / {d.get('rolling_operator_total')} (reimage-all)",
                f"{d.get('rolling_baseline_failed')} / {d.get('rolling_baseline_total')} (rollout restart)",
                "",
                targets["dropped.rolling_operator_failed"],
            )
        )
    s = results.get("scale") or {}
    for run in s.get("runs") or []:
        n = run["roles"]
        floor = run.get("floor") or {}
        rows.append(
            (
                f"{n:,} roles (kwok): operator start → all Available, median of {run.get('pairs', 1)}"
                " alternating pair(s)",
                _s(run.get("seconds_to_available")),
                (
                    f"{_s(floor.get('seconds_to_available'))} for {n:,} plain Deployments created at once"
                    if floor
                    else ""
                ),
                _s(run.get("ratio_median"), ""),
                "; ".join(
                    targets[k]
                    for k in (f"scale.ratio_median_{n}", f"scale.seconds_to_available_{n}")
                    if k in targets
                ),
            )
        )
        rows.append(
            (
                f"{n:,} roles: operator peak RSS; API writes (per role)",
                f"{_s(run.get('peak_rss_mib'), ' MiB')}; {run.get('writes')} ({run.get('writes_per_role')})",
                "",
                "",
                targets.get(f"scale.peak_rss_mib_{n}", ""),
            )
        )
        rows.append(
            (
                f"{n:,} roles: restart, nothing changed: settle time; writes",
                f"{_s(run.get('resync_seconds'))}; {run.get('resync_writes')}",
                "",
                "",
                "; ".join(
                    targets[k]
                    for k in (f"scale.resync_seconds_{n}", f"scale.resync_writes_{n}")
                    if k in targets
                ),
            )
        )
        cpu = run.get("cpu_s_per_role") or {}
        floor_cpu = floor.get("cpu_s_per_role") or {}
        rows.append(
            (
                f"{n:,} roles: CPU seconds per role, operator; API server (first run)",
                f"{_s(cpu.get('operator'), '')}; {_s(cpu.get('kube-apiserver'), '')}",
                f"API server {_s(floor_cpu.get('kube-apiserver'), '')}" if floor_cpu else "",
                "",
                "",
            )
        )
    for size, why in (s.get("not_run") or {}).items():
        rows.append((f"{int(size):,} roles (kwok)", "not run", "", "", why))
    lines = [
        "| benchmark | operator | floor / baseline | ratio (median / p90) | target |",
        "|---|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows),
    ]
    return "\n".join(lines)


def plots(results: dict[str, Any], out: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    r, a = results.get("reimage") or {}, results.get("apply") or {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, title, series in (
        (
            axes[0],
            "Reimage one instance → replacement ready endpoint",
            [
                ("operator\n(reimage)", r.get("operator_samples_s")),
                ("floor\n(pod delete)", r.get("floor_samples_s")),
            ],
        ),
        (
            axes[1],
            f"Apply → {a.get('instances')} instances in rotation",
            [
                ("operator\n(tag)", (a.get("samples_s") or {}).get("operator")),
                ("floor\n(Deployment)", (a.get("samples_s") or {}).get("floor")),
                ("operator\n(digest)", (a.get("samples_s") or {}).get("operator_digest")),
            ],
        ),
    ):
        data = [(label, list(values)) for label, values in series if values]
        if data:
            ax.boxplot([v for _, v in data], whis=(0, 100), widths=0.5)
            for i, (_, values) in enumerate(data, start=1):
                ax.scatter([i + 0.18] * len(values), values, s=10, alpha=0.6)
            ax.set_xticks(range(1, len(data) + 1), [label for label, _ in data])
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("seconds")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"vmrole-operator latency, {stem}", fontsize=11)
    fig.tight_layout()
    path = out / f"{stem}-latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    s = results.get("scale") or {}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    any_data = False
    for run in s.get("runs") or []:
        samples = [x for x in run.get("rss_samples") or [] if x[2] is not None]
        if samples:
            any_data = True
            ax.plot(
                [x[2] for x in samples], [x[1] for x in samples], label=f"{run['roles']:,} roles, cold start"
            )
        if run.get("peak_rss_mib") is not None:
            ax.scatter([run["roles"]], [run["peak_rss_mib"]], marker="x", color="black")
            ax.annotate(f"peak {run['peak_rss_mib']} MiB", (run["roles"], run["peak_rss_mib"]), fontsize=8)
    ax.axhline(150, linestyle="--", color="grey", linewidth=0.8, label="target at 1,000 roles: 150 MiB")
    if any(run["roles"] >= 10000 for run in s.get("runs") or []):
        ax.axhline(500, linestyle=":", color="grey", linewidth=0.8, label="target at 10,000 roles: 500 MiB")
    ax.set_xlabel("roles Available")
    ax.set_ylabel("operator RSS (MiB)")
    ax.set_title(f"Operator RSS against number of roles (kwok), {stem}", fontsize=10)
    if len(s.get("runs") or []) > 1:
        ax.set_xscale("symlog", linthresh=100)
    if not any_data:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / f"{stem}-rss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def write(results: dict[str, Any], out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    fill_required(results)
    results["targets"] = target_status(results)
    path = out / f"{stem}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    shutil.copyfile(path, out / "latest.json")
    return [path, out / "latest.json", *plots(results, out, stem)]
