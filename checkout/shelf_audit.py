"""The books of every shop's shelf (decision 0028), read from both sides: Redis's counters and
holds, SQL's ``skus.shelved``, shelf orders and pending moves. ``livecart audit`` prints it
beside the deal and ledger audits.

Per SKU the counters must add up (available + held + sold == quantity). Once the pipeline has
written every sale and no move of the SKU is pending, SQL's ``shelved`` must be the shelf's
unsold units (quantity - sold): a put adds to both, a take takes from both, a sale moves a unit
from held to sold in Redis and out of ``shelved`` in SQL when its order is written. Every sold
hold must have its order, and every shelf order its sold hold.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlmodel import col

from catalog.models import Product, Sku
from checkout.hold_states import HoldState
from checkout.keys import Keyspace
from checkout.models import Order, ShelfMove
from checkout.pipeline import OrderStream
from checkout.shelf import SaleTerms, ShelfStore
from kernel.db import Database


@dataclass(frozen=True)
class ShelfAudit:
    shop_id: int
    # Per SKU id: the shelf's quantity, available, held and sold, and SQL's shelved.
    skus: dict[str, dict[str, int]]
    unbalanced: list[int]  # SKUs whose counters do not add up
    shelved_mismatch: list[int]  # SQL's shelved is not the shelf's unsold units
    # SKUs whose price, currency or sale state on the shelf is not SQL's (the order sweep
    # pushes SQL's again within a pass).
    terms_mismatch: list[int]
    lost_paid_orders: int  # sold holds with no order, once the pipeline caught up
    orders_without_sale: int  # shelf orders whose hold the shelf does not have as sold
    pending_moves: int  # moves whose request died half-way (the order sweep finishes them)
    pipeline_lag: int

    @property
    def ok(self) -> bool:
        return (
            not self.unbalanced
            and not self.shelved_mismatch
            and not self.terms_mismatch
            and self.lost_paid_orders == self.orders_without_sale == 0
        )

    def json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def audit_shelf(redis: Redis, db: Database, keys: Keyspace, shop_id: int) -> ShelfAudit:
    shelf = ShelfStore(redis, keys, hold_ttl_ms=0, pay_ttl_ms=0)
    counters = await shelf.counters(shop_id)
    terms = await shelf.terms(shop_id)
    holds = await shelf.recorded_holds(shop_id)
    lag = await OrderStream(redis, keys).shelf_lag(shop_id)
    async with db.session() as session:
        conn = await session.connection()
        query = (
            select(
                col(Sku.id),
                col(Sku.shelved),
                col(Sku.list_price),
                col(Sku.currency),
                col(Product.archived_ms),
                col(Sku.product_id),
            )
            .join(Product, col(Product.id) == col(Sku.product_id))
            .where(col(Sku.shop_id) == shop_id)
        )
        rows = (await conn.execute(query)).all()
        shelved = {sku_id: units for sku_id, units, *_ in rows}
        sql_terms = {
            sku_id or 0: SaleTerms(sku_id or 0, price, currency, archived is None, product_id)
            for sku_id, _, price, currency, archived, product_id in rows
        }
        ordered = set(
            (
                await conn.execute(
                    select(col(Order.hold_id)).where(
                        col(Order.shop_id) == shop_id, col(Order.deal_id).is_(None)
                    )
                )
            )
            .scalars()
            .all()
        )
        pending = dict(
            (
                await conn.execute(
                    select(col(ShelfMove.sku_id), func.count())
                    .where(
                        col(ShelfMove.shop_id) == shop_id,
                        col(ShelfMove.status) == "pending",
                        col(ShelfMove.keyspace) == keys.prefix,
                    )
                    .group_by(col(ShelfMove.sku_id))
                )
            ).all()
        )
    sold = {hold_id for hold_id, (state, _) in holds.items() if state is HoldState.SOLD}
    caught_up = lag == 0
    skus: dict[str, dict[str, int]] = {}
    unbalanced, mismatch = [], []
    for sku_id, c in sorted(counters.items()):
        in_sql = shelved.get(sku_id, 0)
        skus[str(sku_id)] = {**c._asdict(), "shelved": in_sql}
        if c.available + c.held + c.sold != c.quantity or min(c) < 0:
            unbalanced.append(sku_id)
        if caught_up and sku_id not in pending and in_sql != c.quantity - c.sold:
            mismatch.append(sku_id)
    # A SKU with no SQL row (deleted) must be off sale on the shelf.
    stale = [
        sku_id
        for sku_id, on_shelf in sorted(terms.items())
        if on_shelf != sql_terms.get(sku_id, on_shelf._replace(on_sale=False))
    ]
    return ShelfAudit(
        shop_id=shop_id,
        skus=skus,
        unbalanced=unbalanced,
        shelved_mismatch=mismatch,
        terms_mismatch=stale,
        lost_paid_orders=len(sold - ordered) if caught_up else 0,
        orders_without_sale=len(ordered - sold),
        pending_moves=sum(pending.values()),
        pipeline_lag=lag,
    )


async def audit_shelves(
    redis: Redis, db: Database, keys: Keyspace, wait_s: float = 0
) -> list[ShelfAudit]:
    """Every shelf's audit, each once its orders are in SQL (or ``wait_s`` has passed)."""
    deadline = time.monotonic() + wait_s
    audits = []
    for shop_id in await ShelfStore(redis, keys, hold_ttl_ms=0, pay_ttl_ms=0).shop_ids():
        while True:
            found = await audit_shelf(redis, db, keys, shop_id)
            if found.pipeline_lag == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        audits.append(found)
    return audits
