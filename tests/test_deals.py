"""A deal's life across Redis and SQL: units allocated at start, given back when the deal can
sell nothing more, and the deal forgotten once its orders are all in SQL."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from catalog.models import Deal, Sku
from checkout import deals
from checkout.holds import HoldStore, ReserveRequest
from checkout.sweeper import sweep_once
from kernel.db import Database
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal
from tests.stores import Stores

pytestmark = pytest.mark.storage


async def sku_and_status(db: Database, deal: Deal) -> tuple[int, int, str]:
    async with db.session() as session:
        sku = await session.get(Sku, deal.sku_id)
        fresh = await session.get(Deal, deal.id)
        assert sku is not None and fresh is not None
        await session.refresh(sku)
        await session.refresh(fresh)
        return sku.stock, sku.allocated, fresh.status


async def test_unsold_units_go_back_once_nothing_more_can_sell(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=5, stock=10, limit=2)
    deal_id = deal.id or 0
    assert await sku_and_status(stores.db, deal) == (10, 5, "live")
    payer, holder = secrets.token_hex(6), secrets.token_hex(6)
    paid = await stores.holds.reserve(deal_id, ReserveRequest(payer, 2))
    await stores.holds.begin_payment(paid.id, payer, "a")
    await stores.holds.commit(paid.id, payer, "pay", "a")
    kept = await stores.holds.reserve(deal_id, ReserveRequest(holder, 1))
    await stores.holds.begin_payment(kept.id, holder, "b")
    async with stores.db.session() as session:
        mine = await session.get(Deal, deal_id)
        assert mine is not None
        await deals.stop(session, stores.holds, mine)

    await sweep_once(stores.holds, stores.db)  # a payment is under way: it could still succeed
    assert await sku_and_status(stores.db, deal) == (10, 5, "ended")
    await stores.holds.payment_failed(kept.id, holder, "b")  # declined: held again
    await stores.holds.release(kept.id, holder)
    await sweep_once(stores.holds, stores.db)
    assert await sku_and_status(stores.db, deal) == (10, 2, "settled")  # 3 unsold units back
    await sweep_once(stores.holds, stores.db)
    assert await sku_and_status(stores.db, deal) == (10, 2, "settled")  # once, not every sweep
    assert deal_id in await stores.holds.live_deal_ids()  # its order is not in SQL yet

    pipeline = stores.pipeline()
    while await pipeline.lag():
        await pipeline.step()
    assert await sku_and_status(stores.db, deal) == (8, 0, "settled")
    await sweep_once(stores.holds, stores.db)
    assert deal_id not in await stores.holds.live_deal_ids()
    assert await stores.redis.ttl(stores.keys.deal(deal_id).holds) > 0  # kept a while, then gone


async def test_a_deal_whose_window_ran_out_settles_without_a_stop(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    deal = await make_live_deal(
        db, private_holds, seller, quantity=4, stock=4, starts_in_ms=-100, duration_ms=400
    )
    assert await sku_and_status(db, deal) == (4, 4, "live")
    await asyncio.sleep(0.4)
    await sweep_once(private_holds, db)
    assert await sku_and_status(db, deal) == (4, 0, "settled")
    assert (deal.id or 0) not in await private_holds.live_deal_ids()
