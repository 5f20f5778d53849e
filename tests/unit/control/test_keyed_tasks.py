"""At most one task per key; the key frees itself as the task ends, so the next request runs."""

from __future__ import annotations

import asyncio

from vmrole_operator.control.keyed_tasks import KeyedTasks


def test_one_task_per_key_and_the_key_is_free_again_when_it_ends() -> None:
    async def scenario() -> list[str]:
        tasks: KeyedTasks[str] = KeyedTasks()
        ran: list[str] = []
        gate = asyncio.Event()

        async def work(tag: str) -> None:
            await gate.wait()
            ran.append(tag)

        assert tasks.start("a", work("first"))
        assert not tasks.start("a", work("dropped"))  # closed unrun, no "never awaited" warning
        assert tasks.start("b", work("other key"))
        assert len(tasks) == 2
        gate.set()
        await asyncio.sleep(0.01)
        assert not tasks.running("a")
        assert tasks.start("a", work("second"))
        await asyncio.sleep(0.01)
        return ran

    assert asyncio.run(scenario()) == ["first", "other key", "second"]


def test_cancel_and_close_stop_running_tasks() -> None:
    async def scenario() -> tuple[bool, int]:
        tasks: KeyedTasks[str] = KeyedTasks()
        cancelled: list[str] = []

        async def forever(tag: str) -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(tag)
                raise

        tasks.start("a", forever("a"))
        tasks.start("b", forever("b"))
        await asyncio.sleep(0)
        tasks.cancel("a")
        running_a = tasks.running("a")
        await tasks.close()
        return running_a, len(cancelled)

    assert asyncio.run(scenario()) == (False, 2)


def test_join_waits_for_tasks_started_while_it_waits() -> None:
    async def scenario() -> list[str]:
        tasks: KeyedTasks[str] = KeyedTasks()
        ran: list[str] = []

        async def second() -> None:
            ran.append("second")

        async def first() -> None:
            await asyncio.sleep(0)
            tasks.start("b", second())
            ran.append("first")

        tasks.start("a", first())
        await tasks.join()
        assert len(tasks) == 0
        return ran

    assert asyncio.run(scenario()) == ["first", "second"]
