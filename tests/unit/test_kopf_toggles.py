"""kopf's ToggleSet, patched: the same behaviour, wake-ups only on flips, and a guard on kopf's version."""

from __future__ import annotations

import asyncio

import pytest
from kopf._cogs.aiokits import aiotoggles

from vmrole_operator.kopf_toggles import UPSTREAM_SOURCE, install, upstream_digests

install()


def test_kopfs_replaced_methods_are_the_ones_the_patch_was_written_for() -> None:
    # Fails on a kopf upgrade that changed them: re-read them, and re-check the patch, before re-pinning.
    assert upstream_digests() == UPSTREAM_SOURCE


class CountingCondition(asyncio.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify_all(self) -> None:
        self.notified += 1
        super().notify_all()


@pytest.mark.parametrize(("fn", "empty"), [(all, True), (any, False)])
def test_the_set_state_follows_its_toggles(fn: object, empty: bool) -> None:
    async def scenario() -> list[bool]:
        toggles = aiotoggles.ToggleSet(fn)  # type: ignore[arg-type]
        seen = [toggles.is_on()]
        a = await toggles.make_toggle(False)
        b = await toggles.make_toggle(True)
        seen.append(toggles.is_on())
        await a.turn_to(True)
        seen.append(toggles.is_on())
        await b.turn_to(False)
        await a.turn_to(False)
        seen.append(toggles.is_on())
        await toggles.drop_toggles([a, b])
        seen.append(toggles.is_on())
        return seen

    expected = {all: [True, False, True, False, True], any: [False, True, True, False, False]}[fn]  # type: ignore[index]
    assert asyncio.run(scenario()) == expected
    assert expected[0] is empty


def test_waiters_wake_when_the_last_blocker_goes_and_only_flips_notify() -> None:
    async def scenario() -> tuple[int, bool]:
        toggles = aiotoggles.ToggleSet(all)
        condition = CountingCondition()
        toggles._condition = condition
        blockers = [await toggles.make_toggle(name=f"object {n}") for n in range(500)]  # as kopf's watcher
        woken = asyncio.Event()

        async def worker() -> None:
            await toggles.wait_for(True)
            woken.set()

        waiting = [asyncio.create_task(worker()) for _ in range(50)]
        await asyncio.sleep(0)
        for blocker in blockers[:-1]:
            await toggles.drop_toggle(blocker)
        assert not woken.is_set()
        await toggles.drop_toggle(blockers[-1])
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        return condition.notified, toggles.is_on()

    notified, on = asyncio.run(scenario())
    assert on
    assert notified == 2  # the first blocker turned the set off, the last one back on: nothing else


def test_a_member_turned_after_it_was_dropped_changes_nothing() -> None:
    async def scenario() -> bool:
        toggles = aiotoggles.ToggleSet(any)
        member = await toggles.make_toggle(False)
        await toggles.drop_toggle(member)
        await member.turn_to(True)
        return toggles.is_on()

    assert asyncio.run(scenario()) is False


def test_a_toggle_of_no_set_waits_as_upstream() -> None:
    async def scenario() -> bool:
        toggle = aiotoggles.Toggle(False)
        waiter = asyncio.create_task(toggle.wait_for(True))
        await asyncio.sleep(0)
        await toggle.turn_to(True)
        await asyncio.wait_for(waiter, 5)
        return toggle.is_on()

    assert asyncio.run(scenario())
