"""The deal audit against real Redis and a real database: it finds a paid hold with no order
(lost), an order beyond the deal's quantity (oversold) and a charge with no sale, and it
passes once the pipeline has written every order. Also ``livecart audit``'s exit code."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from redis.asyncio import Redis

from checkout.audit import audit_deal, settled_audit
from checkout.keys import Keyspace
from checkout.order_store import persist_paid_orders
from checkout.payments import SandboxProvider, refund_whole
from kernel.db import Database
from tests.conftest import PREFIX
from tests.stores import Stores, drain, paid, sell

pytestmark = pytest.mark.storage


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


async def test_the_audit_finds_lost_and_oversold_orders_and_passes_when_books_agree(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=3, stock=10)
    deal_id = deal.id or 0
    sold = await sell(stores.holds, deal, buyers=2)

    before = await stores.audit(deal_id)
    assert (before.sold, before.orders, before.stream_entries_added) == (2, 0, 2)
    assert before.lost_paid_orders == 2 and not before.ok  # paid, not yet in SQL
    assert before.counters_balance and before.oversold == 0

    await drain(stores.pipeline())
    after = await settled_audit(stores.redis, stores.db, stores.keys, deal_id, wait_s=5)
    assert (after.orders, after.order_units, after.lost_paid_orders) == (2, 2, 0)
    assert after.ok and after.pipeline_pending == 0

    # A charge for a hold that never sold (a crash between charge and commit, unrefunded).
    ledger = SandboxProvider(stores.redis, stores.keys.sandbox)
    await ledger.charge(key=f"{deal_id}-99:k", amount=2500, currency="USD", card="4242424242424242")
    charged = await stores.audit(deal_id)
    assert charged.lost_paid_orders == 1 and not charged.ok
    (charge,) = [c for c in await ledger.charges() if c.key == f"{deal_id}-99:k"]
    await refund_whole(ledger, charge)
    assert (await stores.audit(deal_id)).ok

    # One order Redis never sold (written behind its back): within the quantity, still wrong.
    async with stores.db.session() as session:
        await persist_paid_orders(session, [paid(deal, f"{deal_id}-50")])
    stray = await stores.audit(deal_id)
    assert (stray.order_units, stray.oversold, stray.orders_without_sale) == (3, 0, 1)
    assert not stray.ok
    # And one more: now beyond the deal's 3 units too.
    async with stores.db.session() as session:
        await persist_paid_orders(session, [paid(deal, f"{deal_id}-51")])
    over = await stores.audit(deal_id)
    assert (over.order_units, over.oversold, over.orders_without_sale) == (4, 1, 2)
    assert not over.ok
    assert set(sold) <= set(await stores.persisted(deal))


async def test_a_deal_redis_does_not_have_fails_the_audit(
    redis: Redis, db: Database, private_keys: Keyspace
) -> None:
    missing = await audit_deal(redis, db, private_keys, 2_000_000_000)
    assert not missing.in_redis and not missing.ok  # a wrong id or prefix is not a pass


async def test_a_sold_counter_that_disagrees_with_the_holds_fails_the_audit(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=3, stock=3)
    await sell(stores.holds, deal, buyers=1)
    await drain(stores.pipeline())
    assert (await stores.audit(deal.id or 0)).ok
    counters = stores.keys.deal(deal.id or 0).deal
    await stores.redis.hincrby(counters, "sold", 1)  # a hand edit: one unit sold that no hold has
    await stores.redis.hincrby(counters, "available", -1)
    drifted = await stores.audit(deal.id or 0)
    assert drifted.counters_balance and not drifted.sold_matches_holds and not drifted.ok


async def test_livecart_audit_prints_the_books_and_fails_on_a_lost_order(
    redis_url: str,
    database_url: str,
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=2, stock=2)
    await sell(stores.holds, deal, buyers=1)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVECART_REDIS_PREFIX": PREFIX + "p",
    }
    command = [sys.executable, "-m", "web.cli", "audit", "--deal", str(deal.id), "--wait", "0"]
    lost = await asyncio.to_thread(run, command, env)
    assert lost.returncode == 1, lost.stderr
    assert json.loads(lost.stdout)["lost_paid_orders"] == 1
    await drain(stores.pipeline())
    fine = await asyncio.to_thread(run, command, env)
    assert fine.returncode == 0, fine.stderr
    books = json.loads(fine.stdout)
    assert (books["ok"], books["orders"], books["oversold"]) == (True, 1, 0)
