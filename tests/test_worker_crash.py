"""SIGKILL the order worker after it committed a batch and before it acknowledged it (the crash
point ``pipeline.before_ack``, installed by tests/crashing.py), restart it, and count: every
paid order exactly once in SQL, stock taken exactly once."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlmodel import func, select

from catalog.models import Sku
from checkout.holds import HoldStore, ReserveRequest
from checkout.keys import ORDER_GROUP, Keyspace
from checkout.models import Order, OrderEvent
from kernel.db import Database
from tests.conftest import PREFIX, SellerAccount
from tests.helpers import make_live_deal

pytestmark = pytest.mark.storage

SOLD = 60
BATCH = 25
ROOT = Path(__file__).resolve().parent.parent  # where `python -m tests.crashing` is found


async def start_worker(
    redis_url: str, database_url: str, keys: Keyspace, crash_at: str = ""
) -> asyncio.subprocess.Process:
    """``livecart worker``; with ``crash_at``, one that SIGKILLs itself at that crash point."""
    runner = ["tests.crashing", crash_at] if crash_at else ["web.cli"]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *runner,
        "worker",
        cwd=ROOT,
        env={
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "LIVECART_REDIS_PREFIX": keys.prefix,
            "LIVECART_WORKER_BATCH": str(BATCH),
            "LIVECART_WORKER_CLAIM_IDLE_MS": "300",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def wait_for_line(process: asyncio.subprocess.Process, marker: str) -> None:
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await process.stdout.readline()
            assert line, "worker exited before printing " + marker
            if marker in line.decode():
                return


async def counts(db: Database, deal_id: int, sku_id: int) -> tuple[int, int, int, int]:
    async with db.session() as session:
        orders = (await session.exec(select(Order).where(Order.deal_id == deal_id))).all()
        events = (
            await session.exec(
                select(func.count())
                .select_from(OrderEvent)
                .where(OrderEvent.order_id.in_([o.id for o in orders]))
            )
        ).one()  # type: ignore[union-attr]
        sku = await session.get(Sku, sku_id)
        assert sku is not None
        await session.refresh(sku)
        return len(orders), len({o.hold_id for o in orders}), events, sku.stock


async def test_sigkill_between_commit_and_ack_loses_and_duplicates_nothing(
    db: Database, redis: Redis, redis_url: str, database_url: str, seller: SellerAccount
) -> None:
    keys = Keyspace(f"{PREFIX}k{secrets.token_hex(3)}")  # only this test's workers read it
    store = HoldStore(redis, keys)
    await store.install()
    deal = await make_live_deal(db, store, seller, quantity=SOLD, limit=1, stock=SOLD + 40)
    deal_id = deal.id or 0
    for _ in range(SOLD):
        buyer = secrets.token_hex(6)
        hold = await store.reserve(deal_id, ReserveRequest(buyer, 1))
        await store.begin_payment(hold.id, buyer)
        await store.commit(hold.id, buyer, "pay-" + hold.id)

    doomed = await start_worker(redis_url, database_url, keys, crash_at="pipeline.before_ack")
    await wait_for_line(doomed, "LIVECART-FAULT crash at pipeline.before_ack")
    assert await doomed.wait() == -signal.SIGKILL

    stream = keys.deal(deal_id).orders
    orders, distinct, _, stock = await counts(db, deal_id, deal.sku_id)
    assert (orders, distinct, stock) == (BATCH, BATCH, SOLD + 40 - BATCH)
    pending = await redis.xpending(stream, ORDER_GROUP)
    assert pending["pending"] == BATCH  # committed in SQL, never acknowledged

    survivor = await start_worker(redis_url, database_url, keys)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (await counts(db, deal_id, deal.sku_id))[0] == SOLD and (
                await redis.xpending(stream, ORDER_GROUP)
            )["pending"] == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        survivor.send_signal(signal.SIGTERM)
        await survivor.wait()
    assert await counts(db, deal_id, deal.sku_id) == (SOLD, SOLD, SOLD, 40)
    assert (await redis.xpending(stream, ORDER_GROUP))["pending"] == 0
