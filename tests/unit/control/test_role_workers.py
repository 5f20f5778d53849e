"""One run per role at a time, bursts folded into one run, failed event work retried."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vmrole_operator.control.role_workers import RETRY_MAX_S, RoleWorkers, Work, retry_delay
from vmrole_operator.state.observed import Observed


class Recorder:
    """Runs in the worker thread like RoleReconciler.run; can be held to let events pile up."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, Work, int]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_next = 0
        self.version = 0  # what the indexes "hold"; a snapshot copies it

    def snapshot(self, namespace: str, name: str) -> Observed:
        return Observed(pods=[{"version": self.version}])

    def run(self, namespace: str, name: str, work: Work, observed: Observed) -> None:
        self.release.wait(5)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("API down")
        self.runs.append((namespace, name, work, observed.pods[0]["version"]))


async def settle(workers: RoleWorkers) -> None:
    for _ in range(200):
        await asyncio.sleep(0.01)
        if workers.idle():
            return


def test_a_burst_of_events_for_one_role_is_one_run_at_the_strongest_work() -> None:
    async def scenario() -> list[tuple[str, str, Work, int]]:
        rec = Recorder()
        workers = RoleWorkers(rec.run, rec.snapshot, concurrency=2)
        rec.release.clear()
        workers.request("ns", "a", Work.STATUS)  # starts running, held
        await asyncio.sleep(0.05)
        for version in range(1, 6):  # arrive while the first run is busy
            rec.version = version
            workers.request("ns", "a", Work.STATUS)
        workers.request("ns", "a", Work.RECONCILE)
        rec.release.set()
        await settle(workers)
        return rec.runs

    runs = asyncio.run(scenario())
    # The first run, then exactly one more covering all six later events, with the newest snapshot.
    assert runs == [("ns", "a", Work.STATUS, 0), ("ns", "a", Work.RECONCILE, 5)]


def test_roles_do_not_wait_for_each_other() -> None:
    async def scenario() -> list[str]:
        rec = Recorder()
        workers = RoleWorkers(rec.run, rec.snapshot, concurrency=4)
        for name in ("a", "b", "c"):
            workers.request("ns", name, Work.STATUS)
        await settle(workers)
        return sorted(name for _, name, _, _ in rec.runs)

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_failed_event_work_is_retried_after_a_delay() -> None:
    async def scenario() -> list[tuple[str, str, Work, int]]:
        rec = Recorder()
        workers = RoleWorkers(rec.run, rec.snapshot, concurrency=1)
        rec.fail_next = 1
        workers.request("ns", "a", Work.RECONCILE)
        await settle(workers)
        assert rec.runs == []
        await asyncio.sleep(1.3)  # the first retry comes after RETRY_FIRST_S
        await settle(workers)
        return rec.runs

    assert asyncio.run(scenario()) == [("ns", "a", Work.RECONCILE, 0)]


@pytest.mark.parametrize(("failures", "delay"), [(1, 1.0), (2, 2.0), (4, 8.0), (30, RETRY_MAX_S)])
def test_retry_delay_doubles_up_to_a_cap(failures: int, delay: float) -> None:
    assert retry_delay(failures) == delay


def test_a_run_that_asks_for_a_later_look_gets_a_status_run_then() -> None:
    async def scenario() -> list[Work]:
        runs: list[Work] = []

        def run(namespace: str, name: str, work: Work, observed: Observed) -> float | None:
            runs.append(work)
            return 0.05 if len(runs) == 1 else None

        workers = RoleWorkers(run, lambda ns, n: Observed(), concurrency=1)
        workers.request("ns", "a", Work.RECONCILE)
        await asyncio.sleep(0.3)
        await workers.close()
        return runs

    assert asyncio.run(scenario()) == [Work.RECONCILE, Work.STATUS]


def test_forget_drops_pending_work_and_a_scheduled_look() -> None:
    async def scenario() -> int:
        runs: list[Work] = []

        def run(namespace: str, name: str, work: Work, observed: Observed) -> float | None:
            runs.append(work)
            return 0.05

        workers = RoleWorkers(run, lambda ns, n: Observed(), concurrency=1)
        workers.request("ns", "a", Work.STATUS)
        await asyncio.sleep(0.02)
        workers.forget("ns", "a")
        await asyncio.sleep(0.2)
        await workers.close()
        return len(runs)

    assert asyncio.run(scenario()) == 1
