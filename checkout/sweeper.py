"""Housekeeping on a timer, for every deal the node knows of:

- return lapsed holds to stock (reads already ignore them; this makes the room hear about it
  even when nobody is buying);
- settle a deal that can sell nothing more (unsold units go back to its SKU, once);
- forget a settled deal once the order pipeline has drained its stream (trimming what it
  acknowledged: the keys stay a week for late readers, the order entries need not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from catalog.db import Database
from checkout import deals
from checkout.holds import HoldStore
from checkout.pipeline import stream_drained, trim_acknowledged

log = logging.getLogger("livecart.sweeper")


async def sweep_once(store: HoldStore, db: Database) -> None:
    for deal_id in await store.live_deal_ids():
        await store.expire(deal_id)
        state = await store.snapshot(deal_id)
        if state is not None and (state.phase != "ended" or state.held > 0):
            continue
        if state is not None:
            async with db.session() as session:
                if await deals.settle_if_over(session, deal_id, state):
                    log.info("deal %s settled: %s sold of %s", deal_id, state.sold, state.quantity)
        keys = store.keys.deal(deal_id)
        # A deal with dead letters stays in view until an operator replays or removes them.
        if await stream_drained(store.redis, keys.orders) and not await store.redis.exists(
            keys.dead_letters
        ):
            await trim_acknowledged(store.redis, keys.orders)
            await store.forget(deal_id)


async def sweep_forever(
    store: HoldStore, db: Database, interval_ms: int, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await sweep_once(store, db)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_ms / 1000)
