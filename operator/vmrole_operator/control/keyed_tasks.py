"""At most one asyncio task per key: a second request for a key with a task running is a no-op."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedTasks(Generic[K]):
    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self, key: K) -> bool:
        return key in self._tasks

    def start(self, key: K, work: Coroutine[Any, Any, None]) -> bool:
        """Runs `work` for `key` unless a task runs for it already (then `work` is closed unrun)."""
        if key in self._tasks:
            work.close()
            return False
        self._tasks[key] = asyncio.create_task(self._run(key, work))
        return True

    async def _run(self, key: K, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        finally:
            # Inside the task, not in a done callback: a request right after the work ends must
            # find the key free, or it would be dropped.
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    def cancel(self, key: K) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def join(self) -> None:
        """Until no task runs, including tasks started meanwhile."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
