"""One role's work at a time, and a burst of events for a role folded into one run.

A role is touched by events of many objects (its instances, Deployment, Services, resolver pods).
Each event only records what kind of work the role needs; one task per role then runs it, reading
the indexes when it starts, so every event recorded before that moment is covered by a single run.
This is what keeps a cold start of a thousand roles, each with a stream of pod and Deployment
events, to a few API calls per role.

All of it comes from kopf event handlers, which kopf does not retry: failed work is retried here,
with a backoff.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from ..kube.errors import describe, transient
from ..state.observed import Observed
from .keyed_tasks import KeyedTasks

logger = logging.getLogger(__name__)

RoleKey = tuple[str, str]
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


class Work(enum.IntEnum):
    """Ordered: the stronger kind of work includes the weaker one."""

    STATUS = 1  # instances came, went or changed: recompute and write the status
    RECONCILE = 2  # the spec or a child changed: image pin, children, reimage rounds, then status


Snapshot = Callable[[str, str], Observed]
# Returns in how many seconds the role's status needs another look with no event to trigger it.
Runner = Callable[[str, str, Work, Observed], float | None]


def retry_delay(failures: int, most: float = RETRY_MAX_S) -> float:
    return float(min(most, RETRY_FIRST_S * 2 ** max(0, failures - 1)))


class RoleWorkers:
    def __init__(self, run: Runner, snapshot: Snapshot, concurrency: int) -> None:
        self._run = run
        self._snapshot = snapshot
        self._slots = asyncio.Semaphore(concurrency)
        self._locks: dict[RoleKey, asyncio.Lock] = {}
        self._pending: dict[RoleKey, Work] = {}
        self._failures: dict[RoleKey, int] = {}
        self._draining: KeyedTasks[RoleKey] = KeyedTasks()
        self._rechecks: dict[RoleKey, asyncio.TimerHandle] = {}

    def request(self, namespace: str, name: str, work: Work) -> None:
        """Records the work; returns at once. Never raises."""
        key = (namespace, name)
        self._pending[key] = max(work, self._pending.get(key, work))
        if not self._draining.running(key):
            self._draining.start(key, self._drain(key))

    def idle(self) -> bool:
        """No work pending and none running (a retry or a deadline may still be scheduled)."""
        return not self._pending and len(self._draining) == 0

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        recheck = self._rechecks.pop(key, None)
        if recheck is not None:
            recheck.cancel()
        self._pending.pop(key, None)
        self._failures.pop(key, None)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    async def close(self) -> None:
        for recheck in self._rechecks.values():
            recheck.cancel()
        await self._draining.close()

    def _lock(self, key: RoleKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _execute(self, key: RoleKey, work: Work) -> None:
        observed = self._snapshot(*key)  # in the event loop: the indexes are not changing meanwhile
        recheck_in = await asyncio.to_thread(self._run, key[0], key[1], work, observed)
        previous = self._rechecks.pop(key, None)
        if previous is not None:
            previous.cancel()
        if recheck_in is not None:
            self._rechecks[key] = asyncio.get_running_loop().call_later(
                recheck_in, self.request, key[0], key[1], Work.STATUS
            )

    async def _drain(self, key: RoleKey) -> None:
        while key in self._pending:
            async with self._lock(key), self._slots:
                work = self._pending.pop(key, None)
                if work is None:
                    break
                try:
                    await self._execute(key, work)
                except Exception as e:
                    failures = self._failures[key] = self._failures.get(key, 0) + 1
                    delay = retry_delay(failures)
                    if transient(e):
                        logger.warning(
                            "%s of %s/%s: %s; retrying in %.0fs", work.name, *key, describe(e), delay
                        )
                    else:
                        logger.exception("%s of %s/%s failed; retrying in %.0fs", work.name, *key, delay)
                    asyncio.get_running_loop().call_later(delay, self.request, key[0], key[1], work)
                else:
                    self._failures.pop(key, None)
                    if work is Work.RECONCILE:
                        # What the tests and benchmarks wait for: this role was handled as it is now.
                        logger.info("reconciled %s/%s", *key)
