"""Coalesced nudges: ``nudge(key)`` asks for ``work(key)`` to run soon, and a burst of nudges
for one key costs at most two runs (decision 0048).

At most one run per key is under way at a time and at most one more waits behind it: a nudge
while a run is under way marks the key to run again once it is done, so the last nudge of any
burst is always followed by a run that started after it. ``nudge`` never blocks and never
raises; a run's failure is logged and the next nudge tries again.

``spacing_s`` bounds what a steady stream of nudges costs: a run that follows another starts at
least that long after the one before it started (the first of a burst starts at once). A room's
moves in a reservation storm are then at most 1/spacing a second per node, however fast the
batches come, and the last change waits at most that long more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("livecart.nudge")
STARTS_KEPT = 4096


class Nudges:
    def __init__(
        self, work: Callable[[int], Awaitable[None]], what: str, spacing_s: float = 0.0
    ) -> None:
        self.work = work
        self.what = what  # for the log: "room", "deal"
        self.spacing_s = spacing_s
        # Keys with a run due or under way -> nudged since the last run started.
        self._again: dict[int, bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # With spacing: when each key's last run started (loop time), pruned past STARTS_KEPT.
        self._started: dict[int, float] = {}

    def nudge(self, key: int) -> None:
        running = key in self._again
        self._again[key] = True
        if running:
            return
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._again[key]:
                if self.spacing_s:
                    # Nudges that come while this waits are this run's: it reads after them.
                    await asyncio.sleep(
                        self._started.get(key, -self.spacing_s) + self.spacing_s - loop.time()
                    )
                    self._started[key] = loop.time()
                # Nudges from here on are for the next run: this one may read too early.
                self._again[key] = False
                try:
                    await self.work(key)
                except Exception:
                    log.exception("%s %s: a nudge failed; the next one tries again", self.what, key)
            # No await between the last check and the removal below: no nudge is lost.
        finally:
            del self._again[key]
            if len(self._started) > STARTS_KEPT:
                recent = loop.time() - self.spacing_s
                self._started = {k: t for k, t in self._started.items() if t > recent}

    async def close(self) -> None:
        """Cancel the runs under way (on shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
