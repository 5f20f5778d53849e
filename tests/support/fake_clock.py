"""A clock that moves only when the code under test sleeps, running the test's hooks as it does: the
way a unit test plays the controllers and the kubelet between two steps of the operator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from vmrole_operator.clock import Clock


class FakeClock(Clock):
    def __init__(self, start: datetime) -> None:
        self.current = start
        self.slept = 0.0
        self.hooks: list[Callable[[int], None]] = []  # called with the number of sleeps so far
        self.sleeps = 0

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.slept += seconds
        self.sleeps += 1
        for hook in list(self.hooks):
            hook(self.sleeps)
        await asyncio.sleep(0)
