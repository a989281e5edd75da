"""``livecart reconcile`` (decision 0040): a failover that promotes a replica which missed the
last writes leaves Redis without sales SQL knows were paid for. The tests make that state on a
real server the way a promoted replica has it: the deal's keys are dumped before the sale and
restored over it afterwards (tests/test_cluster.py shows a real failover forgetting writes),
then reconcile finds the sale and adopts it back, or flags what it must not repair."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlmodel import col, select

from catalog.models import Deal
from checkout.attempts import AttemptStore
from checkout.audit import audit_deal
from checkout.checkout import Till, pay_for_hold
from checkout.forgotten_sales import reconcile
from checkout.holds import ReserveRequest
from checkout.models import Order
from checkout.payments import SandboxProvider
from checkout.pipeline import ORDER_GROUP
from kernel.redis_client import connect
from tests.stores import Stores, drain, sell

pytestmark = pytest.mark.storage

CARD = "4242424242424242"
Snapshot = dict[str, bytes | None]


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A client that reads values as bytes (DUMP's answers are not text)."""
    client = connect(redis_url, decode_responses=False)
    yield client
    await client.aclose()


async def snapshot(raw: Redis, stores: Stores, deal: Deal) -> Snapshot:
    return {key: await raw.dump(key) for key in stores.keys.deal(deal.id or 0).function_keys()}


async def forget(raw: Redis, taken: Snapshot) -> None:
    """Put the deal's keys back as they were when ``taken``: what a replica promoted before
    it had the writes since then holds."""
    for key, value in taken.items():
        await raw.delete(key)
        if value is not None:
            await raw.restore(key, 0, value, replace=True)


async def buy(stores: Stores, deal: Deal, qty: int = 1) -> tuple[str, str]:
    """A buyer reserves and pays through the real checkout: (buyer, hold id)."""
    me = secrets.token_hex(6)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(me, qty))
    till = Till(
        stores.holds,
        SandboxProvider(stores.redis, stores.keys.sandbox),
        AttemptStore(stores.db, stores.keys.prefix),
    )
    await pay_for_hold(till, hold_id=hold.id, buyer=me, card=CARD, attempt_key="pay")
    return me, hold.id


async def orders_of(stores: Stores, deal: Deal) -> list[Order]:
    async with stores.db.session() as session:
        found = await session.exec(select(Order).where(col(Order.deal_id) == deal.id))
        return list(found.all())


async def test_a_paid_sale_redis_forgot_is_adopted_and_becomes_an_order(
    stores: Stores, raw: Redis
) -> None:
    deal = await stores.live_deal(quantity=3, stock=3)  # at 2500 a unit
    before = await snapshot(raw, stores, deal)
    buyer, hold_id = await buy(stores, deal, qty=2)
    await forget(raw, before)  # the sale, its hold and its order.paid entry are gone
    state = await stores.holds.snapshot(deal.id or 0)
    assert state is not None and (state.available, state.sold) == (3, 0)

    told = await reconcile(stores.redis, stores.db, stores.keys, deal_id=deal.id, repair=False)
    assert [(f.hold_id, f.kind, f.redis_state, f.action) for f in told.findings] == [
        (hold_id, "paid_sale_forgotten", "missing", "to adopt")
    ]
    after = await stores.holds.snapshot(deal.id or 0)
    assert not told.ok and after is not None and (after.available, after.sold) == (3, 0)

    done = await reconcile(stores.redis, stores.db, stores.keys, deal_id=deal.id, repair=True)
    assert [(f.hold_id, f.action) for f in done.findings] == [(hold_id, "adopted")]
    assert done.ok
    await drain(stores.pipeline())
    (order,) = await orders_of(stores, deal)
    assert (order.hold_id, order.buyer_id, order.quantity) == (hold_id, buyer, 2)
    assert (order.unit_price, order.total) == (2500, 5000)
    books = await audit_deal(stores.redis, stores.db, stores.keys, deal.id or 0)
    assert books.ok, books.json()
    assert (books.available, books.sold, books.orders) == (1, 2, 1)
    again = await reconcile(stores.redis, stores.db, stores.keys, deal_id=deal.id, repair=True)
    assert again.findings == [] and again.ok  # a second run finds nothing


async def test_an_order_whose_sale_redis_forgot_gets_its_units_back_without_a_second_order(
    stores: Stores, raw: Redis
) -> None:
    deal = await stores.live_deal(quantity=2, stock=2)
    before = await snapshot(raw, stores, deal)
    _, hold_id = await buy(stores, deal)
    await drain(stores.pipeline())  # the order is written before Redis forgets
    await forget(raw, before)
    done = await reconcile(stores.redis, stores.db, stores.keys, deal_id=deal.id, repair=True)
    # The order is there: its sale is adopted without a new order.paid entry.
    assert [(f.hold_id, f.kind, f.action) for f in done.findings] == [
        (hold_id, "order_without_sale", "adopted")
    ]
    await drain(stores.pipeline())
    assert len(await orders_of(stores, deal)) == 1
    books = await audit_deal(stores.redis, stores.db, stores.keys, deal.id or 0)
    assert books.ok and (books.available, books.sold) == (1, 1), books.json()


async def test_a_forgotten_sale_whose_unit_was_sold_again_is_flagged_and_left_alone(
    stores: Stores, raw: Redis
) -> None:
    deal = await stores.live_deal(quantity=1, stock=1)
    before = await snapshot(raw, stores, deal)
    _, first = await buy(stores, deal)
    await forget(raw, before)
    again_buyer, second = await buy(stores, deal)  # the same unit, sold again
    done = await reconcile(stores.redis, stores.db, stores.keys, deal_id=deal.id, repair=True)
    assert [(f.hold_id, f.action, f.detail["available"]) for f in done.findings] == [
        (first, "flagged: oversold", 0)
    ]
    assert not done.ok
    state = await stores.holds.snapshot(deal.id or 0)
    assert state is not None and (state.available, state.held, state.sold) == (0, 0, 1)
    assert (await stores.holds.get_hold(second, again_buyer)).state == "sold"  # still theirs


async def test_a_sale_sql_has_no_record_of_is_reported_never_repaired_from_redis(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=2, stock=2)
    (hold_id,) = await sell(stores.holds, deal, buyers=1)
    # The pipeline took the entry and SQL lost the order (restored from an older backup): the
    # entry is acknowledged, the order is nowhere.
    stream = stores.keys.deal(deal.id or 0).orders
    await stores.redis.xgroup_create(stream, ORDER_GROUP, id="0", mkstream=True)
    taken = await stores.redis.xreadgroup(ORDER_GROUP, "restored", {stream: ">"})
    await stores.redis.xack(stream, ORDER_GROUP, *[i for _, entries in taken for i, _ in entries])
    done = await reconcile(stores.redis, stores.db, stores.keys, deal_id=deal.id, repair=True)
    assert [(f.hold_id, f.kind, f.action) for f in done.findings] == [
        (hold_id, "sale_without_record", "flagged")
    ]
    assert not done.ok and await orders_of(stores, deal) == []


async def test_livecart_reconcile_reports_then_repairs(
    redis_url: str, database_url: str, stores: Stores, raw: Redis
) -> None:
    deal = await stores.live_deal(quantity=2, stock=2)
    before = await snapshot(raw, stores, deal)
    _, hold_id = await buy(stores, deal)
    await forget(raw, before)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVECART_REDIS_PREFIX": stores.keys.prefix,
    }
    command = [sys.executable, "-m", "web.cli", "reconcile", "--deal", str(deal.id)]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra], env=env, capture_output=True, text=True, timeout=60
        )

    told = await asyncio.to_thread(run)
    assert told.returncode == 1, told.stderr
    assert [f["action"] for f in json.loads(told.stdout)["findings"]] == ["to adopt"]
    done = await asyncio.to_thread(run, "--repair")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["ok"], report["findings"][0]["hold_id"]) == (True, hold_id)
    again = await asyncio.to_thread(run)
    assert again.returncode == 0 and json.loads(again.stdout)["findings"] == []
