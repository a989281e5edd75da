"""The ``stores`` fixture: what the tests of the order pipeline, checkout, a deal's life and the
audit work on directly, without a server (SQL, a hold store in a private keyspace, the Redis
under both, a seller), and the steps they take on them (sell, drain a pipeline)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

import pytest
from redis.asyncio import Redis
from sqlmodel import select

from catalog.models import Deal
from checkout.audit import DealAudit, audit_deal
from checkout.holds import HoldStore, ReserveRequest
from checkout.keys import Keyspace
from checkout.models import Order
from checkout.order_store import PaidOrder
from checkout.pipeline import OrderPipeline
from kernel.db import Database
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal
from web.app import pipeline_config
from web.settings import Settings


async def sell(store: HoldStore, deal: Deal, buyers: int, qty: int = 1) -> list[str]:
    """``buyers`` new buyers each reserve, pay for and commit ``qty`` units: their hold ids."""
    sold = []
    for _ in range(buyers):
        me = secrets.token_hex(6)
        hold = await store.reserve(deal.id or 0, ReserveRequest(me, qty))
        await store.begin_payment(hold.id, me)
        await store.commit(hold.id, me, "pay-" + hold.id)
        sold.append(hold.id)
    return sold


async def drain(p: OrderPipeline, rounds: int = 20) -> None:
    """Step the pipeline until it has read and persisted everything."""
    for _ in range(rounds):
        if await p.step() == 0 and await p.lag() == 0:
            return
    raise AssertionError(f"pipeline did not drain, lag {await p.lag()}")


def paid(deal: Deal, hold_id: str, qty: int = 1) -> PaidOrder:
    """A paid order on the deal as the pipeline hands it to SQL."""
    return PaidOrder(
        hold_id=hold_id,
        deal_id=deal.id or 0,
        sku_id=deal.sku_id,
        shop_id=deal.shop_id,
        buyer_id="b",
        quantity=qty,
        unit_price=2500,
        currency="USD",
        payment_ref="p",
        paid_ms=1,
    )


@dataclass
class Stores:
    db: Database
    holds: HoldStore
    keys: Keyspace
    redis: Redis
    seller: SellerAccount

    async def live_deal(self, **terms: int) -> Deal:
        """A live deal of the seller's, loaded into the hold store (``make_live_deal``'s terms)."""
        return await make_live_deal(self.db, self.holds, self.seller, **terms)

    def pipeline(self, **config: object) -> OrderPipeline:
        """A pipeline with the default settings but for ``config`` (PipelineConfig's fields)."""
        changes = {"block_ms": 50, "consumer": "test-" + secrets.token_hex(4), **config}
        configured = replace(pipeline_config(Settings()), **changes)  # type: ignore[arg-type]
        return OrderPipeline(self.redis, self.db, self.keys, configured)

    async def persisted(self, deal: Deal) -> list[str]:
        """The hold ids of the deal's orders in SQL, sorted."""
        async with self.db.session() as session:
            found = await session.exec(select(Order.hold_id).where(Order.deal_id == (deal.id or 0)))
            return sorted(found.all())

    async def audit(self, deal_id: int) -> DealAudit:
        return await audit_deal(self.redis, self.db, self.keys, deal_id)


@pytest.fixture
def stores(
    db: Database,
    private_holds: HoldStore,
    private_keys: Keyspace,
    redis: Redis,
    seller: SellerAccount,
) -> Stores:
    return Stores(db, private_holds, private_keys, redis, seller)
