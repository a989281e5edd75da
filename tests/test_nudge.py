"""Coalesced nudges (kernel/nudge.py): a burst costs at most a run under way and one after it,
and the last nudge of any burst is followed by a run that started after it."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kernel.nudge import Nudges


class Work:
    """Work that waits to be let go, keeping each run's key and the ``seen`` value it read."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int]] = []
        self.seen = 0
        self.go = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, key: int) -> None:
        self.started.set()
        seen = self.seen  # read first, as a room's move reads the stock first
        await self.go.wait()
        self.runs.append((key, seen))


async def settled(nudges: Nudges) -> None:
    while nudges._tasks:
        await asyncio.gather(*nudges._tasks)


async def test_a_burst_of_a_thousand_nudges_runs_at_most_twice() -> None:
    work = Work()
    nudges = Nudges(work, "room")
    for change in range(1, 1001):
        work.seen = change
        nudges.nudge(7)
        if change == 1:
            await work.started.wait()  # the first run is under way; the rest come during it
    work.go.set()
    await settled(nudges)
    assert work.runs == [(7, 1), (7, 1000)]  # the second run read the last change


async def test_a_burst_before_the_first_run_starts_runs_once() -> None:
    work = Work()
    work.go.set()
    nudges = Nudges(work, "room")
    for change in range(1, 1001):
        work.seen = change
        nudges.nudge(7)
    await settled(nudges)
    assert work.runs == [(7, 1000)]


async def test_runs_after_the_first_are_spaced_and_the_last_nudge_still_runs() -> None:
    """A nudge every 10 ms (a reservation storm's batches) with 50 ms spacing: each run starts
    at least 50 ms after the one before it started, and the last run reads the last change."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    reads: list[int] = []
    current = 0

    async def move(key: int) -> None:
        starts.append(loop.time())
        reads.append(current)

    nudges = Nudges(move, "room", spacing_s=0.05)
    for change in range(1, 31):
        current = change
        nudges.nudge(7)
        await asyncio.sleep(0.01)
    await settled(nudges)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # asyncio may run a timer up to its clock resolution early.
    assert min(gaps) >= 0.05 - loop._clock_resolution, gaps
    assert reads[-1] == 30
    assert len(starts) < 30 or min(gaps) >= 0.05  # a slow machine may space the nudges itself


async def test_keys_run_apart() -> None:
    work = Work()
    work.go.set()
    nudges = Nudges(work, "room")
    nudges.nudge(1)
    nudges.nudge(2)
    nudges.nudge(1)
    await settled(nudges)
    assert sorted(key for key, _ in work.runs) == [1, 2]


async def test_a_failed_run_is_logged_and_the_next_nudge_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    async def flaky(key: int) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise ConnectionError("redis went away")

    nudges = Nudges(flaky, "room")
    nudges.nudge(3)
    await settled(nudges)
    nudges.nudge(3)
    await settled(nudges)
    assert calls == [3, 3]
    assert "room 3: a nudge failed" in caplog.text


async def test_close_cancels_a_run_under_way() -> None:
    work = Work()
    nudges = Nudges(work, "room")
    nudges.nudge(5)
    await work.started.wait()
    await nudges.close()
    assert work.runs == []
    nudges.nudge(5)  # the key is free again
    work.go.set()
    await settled(nudges)
    assert work.runs == [(5, 0)]
