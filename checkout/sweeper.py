"""Returns lapsed holds to stock on a timer. Reads already ignore lapsed holds (the functions
reclaim lazily); the sweeper makes the room hear about expiries even when nobody is buying."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from checkout.holds import HoldStore

log = logging.getLogger("livecart.sweeper")


async def sweep_forever(store: HoldStore, interval_ms: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            for deal_id in await store.live_deal_ids():
                await store.expire(deal_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_ms / 1000)
