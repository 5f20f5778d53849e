"""`python -m bench.run` (behind `make bench`): every benchmark, a markdown table, JSON and plots.

Runs the operator as a real local process (tests/support/operator_process.py) that watches only this
run's namespaces (`bench-<run>-*`; the scale benchmark's own operator watches `bench-<run>s-*`), so
it never touches anything else on the cluster. `--smoke` is the tiny version `make test` runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.operator_process import OperatorProcess

from . import apply, busy, dropped, reimage, report, scale
from .common import CLUSTER_DIR, REPO, Kube, bench_operator, kubectl, run_id, stop_bench_operator
from .pair import Pair

BENCHMARKS = ("reimage", "busy", "dropped", "apply", "scale")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny parameters (seconds, not minutes)")
    p.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where JSON and plots go")
    p.add_argument("--instances", type=int, default=3, help="instances of the reimage/dropped/apply roles")
    p.add_argument("--reimage-trials", type=int, default=20)
    p.add_argument("--apply-trials", type=int, default=20)
    p.add_argument("--busy-trials", type=int, default=10)
    p.add_argument("--dropped-replacements", type=int, default=10)
    p.add_argument("--dropped-rounds", type=int, default=2, help="alternating windows per arm")
    p.add_argument("--dropped-interval", type=float, default=12, help="seconds between replacements")
    p.add_argument("--dropped-rate", type=float, default=50, help="requests per second")
    p.add_argument("--rolling-window", type=float, default=60, help="seconds of load per rolling replacement")
    p.add_argument("--rolling-rounds", type=int, default=1)
    # 10,000 is not in the default (bench/README.md has its run): ask with --scale-sizes 1000,10000.
    p.add_argument("--scale-sizes", default="1000", help="role counts, smallest first")
    p.add_argument("--scale-timeout", type=float, default=3600)
    p.add_argument("--scale-nodes", type=int, default=5, help="fake kwok nodes")
    p.add_argument("--no-scale-floor", action="store_true", help="skip the plain-Deployment scale floor")
    p.add_argument(
        "--scale-pairs",
        default="1000:3",
        help="alternating (operator, floor) pairs per size, as size:pairs,...; other sizes get 1",
    )
    p.add_argument("--quiet", type=float, default=5, help="seconds without operator CPU use = settled")
    args = p.parse_args(argv)
    if args.smoke:
        args.reimage_trials, args.apply_trials, args.busy_trials = 1, 1, 1
        args.dropped_replacements, args.dropped_rounds, args.dropped_interval = 1, 1, 5
        args.dropped_rate, args.rolling_window, args.rolling_rounds = 20, 10, 1
        args.instances = 2
        args.scale_sizes, args.scale_timeout, args.scale_nodes = "5", 120, 1
        args.no_scale_floor, args.quiet, args.scale_pairs = False, 2, "5:2"
    args.only = [b for b in args.only.split(",") if b]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return args


def parse_pairs(text: str) -> dict[int, int]:
    """`1000:3,10000:1` -> {1000: 3, 10000: 1}."""
    pairs = {}
    for item in text.split(","):
        if item:
            size, _, count = item.partition(":")
            pairs[int(size)] = int(count or 1)
    return pairs


class Watchdog:
    """Restarts the benchmark's operator if something ended it, and records that in the results."""

    def __init__(self, operator: OperatorProcess) -> None:
        self.operator = operator
        self.restarts: list[dict[str, Any]] = []

    def __call__(self) -> None:
        proc = self.operator.proc
        if proc is not None and proc.poll() is None:
            return
        code = proc.returncode if proc is not None else None
        print(f"bench: the operator had exited ({code}); restarting it", file=sys.stderr, flush=True)
        self.restarts.append({"at": datetime.datetime.now(datetime.UTC).isoformat(), "returncode": code})
        self.operator.proc = None
        self.operator.start()


def _guarded(name: str, results: dict[str, Any], fn: Any, *a: Any, **kw: Any) -> None:
    t0 = time.monotonic()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        results[name] = fn(*a, **kw)
    except Exception as e:
        traceback.print_exc()
        results[name] = {"skipped": f"failed: {type(e).__name__}: {e}"}
    results[name]["wall_s"] = round(time.monotonic() - t0, 1)
    print(f"bench: {name} done in {results[name]['wall_s']} s", file=sys.stderr, flush=True)


def _pair_benchmarks(
    kube: Kube, namespace: str, watchdog: Watchdog, args: argparse.Namespace, results: dict[str, Any]
) -> None:
    with Pair(kube, namespace, instances=args.instances, guard=watchdog) as pair:
        if "reimage" in args.only:
            _guarded("reimage", results, reimage.run, pair, args.reimage_trials)
        if "busy" in args.only:
            _guarded("busy", results, busy.run, pair, args.busy_trials, guard=watchdog)
        if "dropped" in args.only:
            _guarded(
                "dropped",
                results,
                dropped.run,
                pair,
                replacements=args.dropped_replacements,
                rounds=args.dropped_rounds,
                interval=args.dropped_interval,
                rate=args.dropped_rate,
                rolling_duration=args.rolling_window,
                rolling_rounds=args.rolling_rounds,
            )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    kube = Kube()
    run = run_id()
    logs = CLUSTER_DIR / "logs"
    started = datetime.datetime.now(datetime.UTC)
    results: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "run": run,
        "smoke": args.smoke,
        "machine": report.machine(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/vmroles.vmrole.dev", "--timeout=60s")

    pair_benchmarks = [b for b in ("reimage", "busy", "dropped", "apply") if b in args.only]
    if pair_benchmarks:
        operator = bench_operator(logs / f"operator-bench-{run}.log", run, f"bench-{run}-*")
        operator.start()
        watchdog = Watchdog(operator)
        results["operator_restarts"] = watchdog.restarts
        namespaces = []
        try:
            if {"reimage", "busy", "dropped"} & set(args.only):
                namespace = kube.create_namespace(f"bench-{run}-pair")
                namespaces.append(namespace)
                try:
                    _pair_benchmarks(kube, namespace, watchdog, args, results)
                except Exception as e:  # the pair never became ready: both benchmarks are lost
                    traceback.print_exc()
                    for name in ("reimage", "busy", "dropped"):
                        if name in args.only:
                            results.setdefault(name, {"skipped": f"failed: {type(e).__name__}: {e}"})
                kube.delete_namespace(namespace)  # its 6 pods would otherwise run through apply
            if "apply" in args.only:
                namespace = kube.create_namespace(f"bench-{run}-apply")
                namespaces.append(namespace)
                _guarded(
                    "apply",
                    results,
                    apply.run,
                    kube,
                    namespace,
                    args.apply_trials,
                    instances=args.instances,
                    guard=watchdog,
                )
        finally:
            stop_bench_operator(operator)
            for namespace in namespaces:
                kube.delete_namespace(namespace)
    if "scale" in args.only:
        sizes = [int(s) for s in args.scale_sizes.split(",") if s]
        _guarded(
            "scale",
            results,
            scale.run,
            kube,
            run,
            sizes,
            args.scale_timeout,
            logs,
            floor=not args.no_scale_floor,
            nodes=args.scale_nodes,
            quiet_s=args.quiet,
            pairs=parse_pairs(args.scale_pairs),
        )
        results["scale_runs"] = scale.scale_runs(results.get("scale") or {})
    for name in BENCHMARKS:
        results.setdefault(name, {"skipped": "not selected (--only)"})
    results["wall_s"] = round((datetime.datetime.now(datetime.UTC) - started).total_seconds(), 1)
    stem = results["date"] + ("-smoke" if args.smoke else "")
    written = report.write(results, args.out, stem)
    print(report.markdown(results))
    print("\n" + json.dumps(results["targets"], indent=1))
    print("\nwrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
