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

from catalog.db import Database
from checkout.audit import audit_deal, settled_audit
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.order_store import persist_paid_orders
from checkout.payments import SandboxProvider
from tests.conftest import PREFIX, SellerAccount
from tests.helpers import make_live_deal
from tests.test_pipeline import drain, paid, pipeline, sell

pytestmark = pytest.mark.storage


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


async def test_the_audit_finds_lost_and_oversold_orders_and_passes_when_books_agree(
    redis: Redis,
    db: Database,
    private_holds: HoldStore,
    private_keys: Keyspace,
    seller: SellerAccount,
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=3, stock=10)
    deal_id = deal.id or 0
    sold = await sell(private_holds, deal, buyers=2)

    before = await audit_deal(redis, db, private_keys, deal_id)
    assert (before.sold, before.orders, before.paid_entries) == (2, 0, 2)
    assert before.lost_paid_orders == 2 and not before.ok  # paid, not yet in SQL
    assert before.counters_balance and before.oversold == 0

    await drain(pipeline(redis, db, private_keys))
    after = await settled_audit(redis, db, private_keys, deal_id, wait_s=5)
    assert (after.orders, after.order_units, after.lost_paid_orders) == (2, 2, 0)
    assert after.ok and after.pipeline_pending == 0

    # A charge for a hold that never sold (a crash between charge and commit, unrefunded).
    ledger = SandboxProvider(redis, private_keys.sandbox_charges)
    await ledger.charge(key=f"{deal_id}-99:k", amount=2500, currency="USD", card="4242424242424242")
    charged = await audit_deal(redis, db, private_keys, deal_id)
    assert charged.lost_paid_orders == 1 and not charged.ok
    (charge,) = [c for c in await ledger.charges() if c.key == f"{deal_id}-99:k"]
    await ledger.refund(charge)
    assert (await audit_deal(redis, db, private_keys, deal_id)).ok

    # Two more orders than the deal had units: written behind Redis's back.
    extra = [paid(deal, f"{deal_id}-{n}") for n in (50, 51)]
    async with db.session() as session:
        await persist_paid_orders(session, extra)
    over = await audit_deal(redis, db, private_keys, deal_id)
    assert (over.order_units, over.oversold) == (4, 1) and not over.ok
    assert sold  # the real sales are among the orders
    await redis.delete(private_keys.sandbox_charges)


async def test_livecart_audit_prints_the_books_and_fails_on_a_lost_order(
    redis_url: str,
    database_url: str,
    redis: Redis,
    db: Database,
    private_holds: HoldStore,
    private_keys: Keyspace,
    seller: SellerAccount,
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=2, stock=2)
    await sell(private_holds, deal, buyers=1)
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
    await drain(pipeline(redis, db, private_keys))
    fine = await asyncio.to_thread(run, command, env)
    assert fine.returncode == 0, fine.stderr
    books = json.loads(fine.stdout)
    assert (books["ok"], books["orders"], books["oversold"]) == (True, 1, 0)
