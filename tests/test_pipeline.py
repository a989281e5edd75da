"""The order pipeline against real Redis streams and a real database: batches, redelivery,
claims from a dead consumer, the dead-letter stream, and the guarded stock decrement."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from sqlmodel import col, func, select

from catalog.models import Sku
from checkout.audit import settled_audit
from checkout.holds import HoldStore
from checkout.keys import ORDER_GROUP
from checkout.models import Order, OrderEvent
from checkout.order_store import persist_paid_orders
from checkout.pipeline import (
    replay_dead_letters,
    stream_drained,
    trim_acknowledged,
)
from checkout.sweeper import sweep_once
from kernel.db import Database
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal
from tests.stores import Stores, drain, paid, sell

pytestmark = pytest.mark.storage


async def orders_of(db: Database, deal_id: int) -> list[Order]:
    async with db.session() as session:
        found = await session.exec(select(Order).where(Order.deal_id == deal_id))
        return list(found.all())


async def stock_of(db: Database, sku_id: int) -> int:
    async with db.session() as session:
        sku = await session.get(Sku, sku_id)
        assert sku is not None
        await session.refresh(sku)
        return sku.stock


async def test_persisting_a_batch_twice_changes_nothing_the_second_time(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=10, stock=10)
    batch = [paid(deal, f"{deal.id}-{n}", qty=2) for n in range(1, 4)]
    async with db.session() as session:
        first = await persist_paid_orders(session, batch)
    async with db.session() as session:
        second = await persist_paid_orders(session, batch)
    assert (first.inserted, first.duplicates) == (3, 0)
    assert (second.inserted, second.duplicates) == (0, 3)
    assert len(await orders_of(db, deal.id or 0)) == 3
    assert await stock_of(db, deal.sku_id) == 10 - 6
    async with db.session() as session:
        events = await session.exec(
            select(func.count())
            .select_from(OrderEvent)
            .where(col(OrderEvent.order_id).in_([o.id for o in await orders_of(db, deal.id or 0)]))
        )
        assert events.one() == 3


async def test_a_stock_shortfall_keeps_the_paid_order(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=3, stock=3)
    async with db.session() as session:
        sku = await session.get(Sku, deal.sku_id)
        assert sku is not None
        sku.stock = sku.allocated = 1  # a hand edit of the database; the API refuses this
        session.add(sku)
        await session.commit()
    async with db.session() as session:
        result = await persist_paid_orders(session, [paid(deal, f"{deal.id}-1", qty=2)])
    assert (result.inserted, result.stock_shortfalls) == (1, 1)
    assert await stock_of(db, deal.sku_id) == 1  # never negative, never below zero


async def test_pipeline_persists_every_sale_once(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=40, stock=50)
    sold = await sell(stores.holds, deal, 40)
    p = stores.pipeline(batch=16)
    await drain(p)
    assert await stores.persisted(deal) == sorted(sold)
    assert await stock_of(stores.db, deal.sku_id) == 10
    assert await stores.redis.xpending(stores.keys.deal(deal.id or 0).orders, ORDER_GROUP) == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }


async def test_entries_left_by_a_dead_consumer_are_claimed(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=5)
    stream = stores.keys.deal(deal.id or 0).orders
    await stores.pipeline().streams()  # creates the consumer group
    sold = await sell(stores.holds, deal, 5)
    # A consumer reads the entries and dies before persisting or acknowledging them.
    taken = await stores.redis.xreadgroup(ORDER_GROUP, "dead-consumer", {stream: ">"}, count=100)
    assert len(taken[0][1]) == 5
    alive = stores.pipeline(claim_idle_ms=0)
    await drain(alive)
    assert await stores.persisted(deal) == sorted(sold)
    assert (await stores.redis.xpending(stream, ORDER_GROUP))["pending"] == 0


async def test_poison_entries_go_to_the_dead_letter_stream(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=5)
    keys = stores.keys.deal(deal.id or 0)
    sold = await sell(stores.holds, deal, 2)
    await stores.redis.xadd(keys.orders, {"type": "order.paid", "hold": "broken"})  # fields missing
    p = stores.pipeline(claim_idle_ms=0, max_deliveries=2)
    for _ in range(6):
        await p.step()
    assert await stores.persisted(deal) == sorted(sold)
    dead = await stores.redis.xrange(keys.dead_letters)
    assert [fields["hold"] for _, fields in dead] == ["broken"]
    assert (await stores.redis.xpending(keys.orders, ORDER_GROUP))["pending"] == 0
    assert p.stats.dead_lettered == 1


async def test_a_database_outage_dead_letters_nothing(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=5)
    keys = stores.keys.deal(deal.id or 0)
    sold = await sell(stores.holds, deal, 3)
    unreachable = Database("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens there
    try:
        down = replace(stores, db=unreachable).pipeline(claim_idle_ms=0, max_deliveries=1)
        for _ in range(4):
            assert await down.step() == 0
    finally:
        await unreachable.close()
    assert await stores.redis.xlen(keys.dead_letters) == 0
    back = stores.pipeline(claim_idle_ms=0, max_deliveries=1)
    await drain(back)
    assert await stores.persisted(deal) == sorted(sold)
    assert await stores.redis.xlen(keys.dead_letters) == 0


async def test_replayed_dead_letters_reach_sql_once(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=5)
    keys = stores.keys.deal(deal.id or 0)
    (hold_id,) = await sell(stores.holds, deal, 1)
    p = stores.pipeline()
    await drain(p)
    # A good entry that was dead-lettered (say, the database refused it for a reason since
    # mended), and the already-persisted one dead-lettered by mistake too.
    ((_, sold_entry),) = await stores.redis.xrange(keys.orders)
    await stores.redis.xadd(keys.dead_letters, {**sold_entry, "original_id": "1-0"})
    lost = {**sold_entry, "hold": f"{deal.id}-99", "payment_ref": "pay-99"}
    await stores.redis.xadd(keys.dead_letters, {**lost, "original_id": "2-0"})
    await stores.holds.stop_deal(deal.id or 0)  # over and drained: only dead letters remain
    await sweep_once(stores.holds, stores.db)
    assert (deal.id or 0) in await stores.holds.live_deal_ids()  # dead letters keep it in view

    assert await replay_dead_letters(stores.redis, stores.keys, deal.id or 0) == 2
    await drain(p)
    assert await stores.persisted(deal) == sorted([hold_id, f"{deal.id}-99"])
    assert await stores.redis.xlen(keys.dead_letters) == 0


async def test_a_batch_mixing_orders_with_and_without_an_address_keeps_each(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=4, stock=4)
    address = {"name": "Ada", "line1": "1 Way", "line2": "", "city": "X", "postal_code": "1",
               "country": "GB"}  # fmt: skip
    batch = [
        paid(deal, f"{deal.id}-1")._replace(shipping=orjson.dumps(address).decode()),
        paid(deal, f"{deal.id}-2"),
        paid(deal, f"{deal.id}-3")._replace(shipping=orjson.dumps(address).decode()),
    ]
    async with db.session() as session:
        result = await persist_paid_orders(session, batch)
    assert (result.inserted, result.duplicates) == (3, 0)
    shipping = {o.hold_id: o.shipping for o in await orders_of(db, deal.id or 0)}
    assert shipping == {f"{deal.id}-1": address, f"{deal.id}-2": None, f"{deal.id}-3": address}
    assert await stock_of(db, deal.sku_id) == 1


async def test_what_the_pipeline_acknowledged_is_trimmed_and_the_books_still_agree(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=61, stock=61)
    deal_id = deal.id or 0
    keys = stores.keys.deal(deal_id)
    p = stores.pipeline(batch=7, trim_interval_ms=0)
    sold = []
    for _ in range(6):  # sales keep coming while the pipeline works
        sold += await sell(stores.holds, deal, 10)
        await drain(p)
        assert await stores.redis.xlen(keys.orders) == 1  # only the last delivered entry is kept
        assert await stream_drained(stores.redis, keys.orders)
    assert p.stats.trimmed == 59
    assert await stores.persisted(deal) == sorted(sold)
    books = await settled_audit(stores.redis, stores.db, stores.keys, deal_id, wait_s=5)
    assert books.ok and (books.orders, books.stream_entries_added) == (60, 60)

    # One more sale: the trimmed stream still counts what is unread, and the pipeline reads it.
    (late,) = await sell(stores.holds, deal, 1)
    assert not await stream_drained(stores.redis, keys.orders)
    await drain(p)
    assert late in await stores.persisted(deal)

    # The deal ends; the sweeper forgets it and leaves the last entry trimmed too.
    await stores.holds.stop_deal(deal_id)
    await sweep_once(stores.holds, stores.db)
    assert deal_id not in await stores.holds.live_deal_ids()
    assert await stores.redis.xlen(keys.orders) == 1
    books = await settled_audit(stores.redis, stores.db, stores.keys, deal_id, wait_s=5)
    assert books.ok and (books.orders, books.stream_entries_added) == (61, 61)


async def test_trimming_never_drops_an_entry_still_pending(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    stream = stores.keys.deal(deal.id or 0).orders
    await stores.pipeline().streams()  # creates the consumer group
    sold = await sell(stores.holds, deal, 4)
    # A consumer reads four entries and dies; the four after them are read and acknowledged.
    await stores.redis.xreadgroup(ORDER_GROUP, "dead-consumer", {stream: ">"}, count=100)
    sold += await sell(stores.holds, deal, 4)
    patient = stores.pipeline(trim_interval_ms=0)  # claims after 30 s
    await patient.step()
    assert len(await stores.persisted(deal)) == 4
    assert await trim_acknowledged(stores.redis, stream) == 0  # all behind the oldest pending one
    assert await stores.redis.xlen(stream) == 8
    alive = stores.pipeline(claim_idle_ms=0, trim_interval_ms=0)
    await drain(alive)
    assert await stores.persisted(deal) == sorted(sold)
    assert await stores.redis.xlen(stream) == 1
