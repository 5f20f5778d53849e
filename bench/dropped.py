"""3. Dropped requests: HTTP load from the host through each Service's ClusterIP while instances are replaced.

The load is open-loop: request i is sent at t0 + i/rate whatever happened before, each on a new TCP
connection (so kube-proxy picks an endpoint each time), for a fixed duration; a request fails on a
connection error, a timeout or a status other than 200. It targets only the cluster's ClusterIP on
this machine (kube-proxy's iptables DNAT to the pods of the local node).

Single: `count` replacements per arm, spread over windows of fixed length (operator reimage vs plain
pod delete, no preStop hook), windows alternating operator, floor, operator, floor, ...
Rolling: reimage-all (role annotation) vs `kubectl rollout restart`, one fixed window each, alternating.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from .common import wait_for
from .pair import OPERATOR, Pair, Side, wait_gone
from .reimage import ReimageUnsupported


class Load:
    """Fixed-rate HTTP GETs for a fixed duration, in a thread with its own event loop."""

    def __init__(self, host: str, port: int, rate: float, duration: float, path: str = "/version") -> None:
        self.host, self.port, self.rate, self.duration, self.path = host, port, rate, duration, path
        self.results: list[tuple[float, str]] = []  # (seconds since start, "ok" or the error)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True, name="load")
        self.t0 = 0.0

    def start(self) -> Load:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def join(self) -> dict[str, Any]:
        self._thread.join(self.duration + 30)
        errors = Counter(r for _, r in self.results if r != "ok")
        failed_at = [round(t, 2) for t, r in self.results if r != "ok"]
        return {
            "total": len(self.results),
            "failed": sum(errors.values()),
            "errors": dict(errors),
            "failed_at_s": failed_at[:200],
        }

    async def _one(self, sent: float) -> None:
        request = f"GET {self.path} HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 2)
            try:
                writer.write(request)
                await writer.drain()
                data = await asyncio.wait_for(reader.read(), 2)
            finally:
                writer.close()
            status = data.split(b"\r\n", 1)[0].split()
            outcome = "ok" if len(status) >= 2 and status[1] == b"200" else f"status {status[1:2]!r}"
        except TimeoutError:
            outcome = "timeout"
        except OSError as e:
            outcome = type(e).__name__
        self.results.append((sent, outcome))

    async def _main(self) -> None:
        tasks = []
        n = int(self.rate * self.duration)
        start = time.monotonic()
        for i in range(n):
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(round(due - start, 3))))
        await asyncio.gather(*tasks)


def _window_single(
    pair: Pair, side: Side, count: int, interval: float, rate: float, round_: int, timeout: float
) -> dict[str, Any]:
    duration = count * interval + 4
    load = Load(pair.cluster_ip(side), 80, rate, duration).start()
    late = 0
    for k in range(count):
        due = load.t0 + 2 + k * interval
        if time.monotonic() < due:
            time.sleep(due - time.monotonic())
        else:
            late += 1
        before = side.steady(pair.instances, timeout)
        victim = sorted(before)[k % pair.instances]
        side.replace(victim, f"drop-{round_}-{k}")
        try:
            side.wait_new_ready(before, 60 if side.kind == OPERATOR else timeout)
        except TimeoutError:
            exists, terminating = side.pod_exists(victim)
            if side.kind == OPERATOR and exists and not terminating:
                load.join()
                raise ReimageUnsupported(
                    f"the operator did not act on {victim}'s vmrole.dev/reimage annotation within 60s"
                ) from None
            raise
        wait_gone(side, victim, timeout)
    finished_in_window = time.monotonic() <= load.t0 + duration
    result = load.join()
    result.update(replacements=count, late_starts=late, finished_in_window=finished_in_window)
    return result


def _window_rolling(
    pair: Pair, side: Side, duration: float, rate: float, round_: int, timeout: float
) -> dict[str, Any]:
    before = side.steady(pair.instances, timeout)
    load = Load(pair.cluster_ip(side), 80, rate, duration).start()
    time.sleep(2)
    token = f"roll-{round_}-{int(time.time())}"
    side.replace_all(token)
    if side.kind == OPERATOR:
        try:
            wait_for(
                lambda: (pair.role_status().get("lastReimage") or {}).get("token") == token,
                20,
                f"reimage-all {token} recorded in status.lastReimage",
            )
        except TimeoutError:
            load.join()
            raise ReimageUnsupported(f"the operator did not start reimage-all {token!r} within 20s") from None

    def all_new() -> bool:
        state = side.endpoints.snapshot()
        ready = {p for p, e in state.items() if e.ready}
        if len(ready) != pair.instances or set(state) & before:
            return False
        return side.kind != OPERATOR or bool((pair.role_status().get("lastReimage") or {}).get("completedAt"))

    deadline = time.monotonic() + min(timeout, duration + 60)
    while not all_new():
        if time.monotonic() > deadline:
            load.join()
            raise TimeoutError(f"{side.name}: rolling replacement not done")
        time.sleep(0.2)
    side.steady(pair.instances, timeout)
    finished = time.monotonic() - load.t0
    result = load.join()
    result.update(replacement_seconds=round(finished - 2, 2), finished_in_window=finished <= duration)
    if side.kind == OPERATOR:
        result["lastReimage"] = pair.role_status().get("lastReimage")
    return result


def _add(into: dict[str, Any], window: dict[str, Any]) -> None:
    into["total"] = into.get("total", 0) + window["total"]
    into["failed"] = into.get("failed", 0) + window["failed"]
    into.setdefault("windows", []).append(window)


def run(
    pair: Pair,
    replacements: int = 10,
    rounds: int = 2,
    interval: float = 12,
    rate: float = 50,
    rolling_duration: float = 60,
    rolling_rounds: int = 1,
    timeout: float = 180,
) -> dict[str, Any]:
    single: dict[str, dict[str, Any]] = {"operator": {}, "floor": {}}
    rolling: dict[str, dict[str, Any]] = {"operator": {}, "floor": {}}
    unavailable: str | None = None
    per_round = [replacements // rounds + (1 if r < replacements % rounds else 0) for r in range(rounds)]
    for r, count in enumerate(per_round):
        for side in pair.sides():
            if side.kind == OPERATOR and unavailable:
                continue
            try:
                _add(single[side.kind], _window_single(pair, side, count, interval, rate, r, timeout))
            except ReimageUnsupported as e:
                unavailable = str(e)
    for r in range(rolling_rounds):
        for side in pair.sides():
            if side.kind == OPERATOR and unavailable:
                continue
            try:
                _add(rolling[side.kind], _window_rolling(pair, side, rolling_duration, rate, r, timeout))
            except ReimageUnsupported as e:
                unavailable = str(e)
    op, base = single["operator"], single["floor"]
    result: dict[str, Any] = {
        "rate_per_s": rate,
        "single": {"replacements_per_arm": replacements, "window_interval_s": interval, **single},
        "rolling": {"window_s": rolling_duration, **rolling},
        "operator_failed": op.get("failed"),
        "operator_total": op.get("total"),
        "baseline_failed": base.get("failed"),
        "baseline_total": base.get("total"),
        "rolling_operator_failed": rolling["operator"].get("failed"),
        "rolling_operator_total": rolling["operator"].get("total"),
        "rolling_baseline_failed": rolling["floor"].get("failed"),
        "rolling_baseline_total": rolling["floor"].get("total"),
    }
    if unavailable:
        result["operator_unavailable"] = unavailable
    return result
