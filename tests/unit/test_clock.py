"""Time as the API writes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from vmrole_operator.clock import Clock, format_time, parse_time, utcnow


def test_round_trip_and_bad_input() -> None:
    t0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
    assert parse_time("2026-11-22T10:00:00Z") == t0
    assert parse_time("2026-11-22T11:00:00+01:00") == t0
    assert parse_time("2026-11-22T10:00:00") == t0  # naive means UTC
    assert parse_time("2026-11-22T10:00:00.123456Z") == t0 + timedelta(microseconds=123456)
    assert parse_time(None) is None
    assert parse_time("") is None
    assert parse_time("yesterday") is None
    assert format_time(t0 + timedelta(microseconds=999)) == "2026-11-22T10:00:00Z"
    assert (
        format_time(datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=2))))
        == "2026-11-22T10:00:00Z"
    )


def test_the_real_clock() -> None:
    before = utcnow()
    clock = Clock()
    asyncio.run(clock.sleep(0.01))
    assert before < clock.now() <= utcnow()
    assert clock.now().tzinfo is not None
