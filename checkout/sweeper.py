"""Housekeeping on a timer, for every deal the node knows of:

- return lapsed holds to stock (every read of a deal returns them first anyway; this keeps the
  stored counters true for deals nobody reads);
- settle a deal that can sell nothing more (unsold units go back to its SKU, once);
- forget a settled deal once the order pipeline has drained its stream (trimming what it
  acknowledged: the keys stay a week for late readers, the order entries need not);
- return lapsed list-price holds of the shops whose SKUs buyers wait for, so each returned unit
  is kept for the next in line on time (decision 0036).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from checkout import deals
from checkout.holds import HoldStore
from checkout.pipeline import OrderStream
from kernel.db import Database

log = logging.getLogger("livecart.sweeper")


async def sweep_once(store: HoldStore, db: Database) -> None:
    orders = OrderStream(store.redis, store.keys)  # the orders streams of the same deals
    for deal_id in await store.live_deal_ids():
        await store.expire(deal_id)
        state = await store.snapshot(deal_id)
        if state is not None and not state.over:
            continue
        if state is not None:
            async with db.session() as session:
                if await deals.settle_if_over(session, deal_id, state):
                    log.info("deal %s settled: %s sold of %s", deal_id, state.sold, state.quantity)
        # A deal with dead letters stays in view until an operator replays or removes them.
        if await orders.finished(deal_id):
            await orders.trim(deal_id)
            await store.forget(deal_id)
    await store.shelf.expire_waited()


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
