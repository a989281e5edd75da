"""The books of one flash deal, read from both sides: Redis (stock counters, holds, the orders
stream and the sandbox ledger) and SQL (the orders). A load test ends with this audit; an
operator can run it any time (``livecart audit --deal ID``).

Oversold: more units sold (in Redis, or as SQL orders) than the deal had. Lost paid orders:
holds that were paid for (sold in Redis, or charged and not refunded) with no SQL order once the
pipeline has caught up. Orders without a sale: SQL orders whose hold Redis does not have as
sold. All three must be 0, the counters must balance, the ``sold`` counter must equal the units
of the sold holds, and the deal must be in Redis at all (a wrong id or key prefix finds nothing,
which is a failure, not a pass).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlmodel import col

from checkout.hold_states import HoldState
from checkout.holds import DealCounters, HoldStore
from checkout.keys import Keyspace, deal_id_of_hold
from checkout.models import Order
from checkout.payments import ChargeStatus, SandboxProvider
from checkout.pipeline import OrderStream
from kernel.db import Database


@dataclass(frozen=True)
class DealAudit:
    deal_id: int
    in_redis: bool  # the deal's keys are there (else nothing below can be judged)
    quantity: int
    available: int
    held: int
    sold: int  # units, by Redis's counters
    holds: dict[str, int]  # holds by state
    # Entries ever appended to the deal's orders stream: one per sale, plus replayed dead
    # letters. A count kept by Redis, so the trimming of acknowledged entries does not lower it.
    stream_entries_added: int
    pipeline_pending: int  # entries read by a worker and not yet acknowledged
    orders: int  # SQL orders of the deal
    order_units: int
    charged_holds: int  # holds with an approved, unrefunded sandbox charge
    counters_balance: bool  # available + held + sold == quantity
    sold_matches_holds: bool  # the sold counter == the units of the holds marked sold
    oversold: int
    lost_paid_orders: int
    orders_without_sale: int

    @property
    def ok(self) -> bool:
        return (
            self.in_redis
            and self.counters_balance
            and self.sold_matches_holds
            and self.oversold == self.lost_paid_orders == self.orders_without_sale == 0
        )

    def json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def _charged_holds(provider: SandboxProvider, deal_id: int) -> set[str]:
    charged = set()
    for charge in await provider.charges():
        hold_id = charge.key.split(":", 1)[0]
        approved = charge.status is ChargeStatus.APPROVED and not charge.refunded
        if approved and deal_id_of_hold(hold_id) == deal_id:
            charged.add(hold_id)
    return charged


async def audit_deal(redis: Redis, db: Database, keys: Keyspace, deal_id: int) -> DealAudit:
    store, stream = HoldStore(redis, keys), OrderStream(redis, keys)
    found = await store.counters(deal_id)
    quantity, available, held, sold = found or DealCounters(0, 0, 0, 0)
    holds = await store.recorded_holds(deal_id)
    states = Counter(hold.state.value for hold in holds)  # plain keys: the audit prints as JSON
    sold_records = [hold for hold in holds if hold.state is HoldState.SOLD]
    sold_holds = {hold.id for hold in sold_records}
    sold_hold_units = sum(hold.qty for hold in sold_records)
    charged = await _charged_holds(SandboxProvider(redis, keys.sandbox_charges), deal_id)
    async with db.session() as session:
        rows = (
            await (await session.connection()).execute(
                select(col(Order.hold_id), col(Order.quantity)).where(col(Order.deal_id) == deal_id)
            )
        ).all()
    ordered = {hold_id for hold_id, _ in rows}
    order_units = sum(qty for _, qty in rows)
    return DealAudit(
        deal_id=deal_id,
        in_redis=found is not None,
        quantity=quantity,
        available=available,
        held=held,
        sold=sold,
        holds=dict(states),
        stream_entries_added=await stream.entries_added(deal_id),
        pipeline_pending=await stream.pending(deal_id),
        orders=len(rows),
        order_units=order_units,
        charged_holds=len(charged),
        counters_balance=available + held + sold == quantity,
        sold_matches_holds=sold == sold_hold_units,
        oversold=max(0, sold - quantity, order_units - quantity),
        lost_paid_orders=len((sold_holds | charged) - ordered),
        orders_without_sale=len(ordered - sold_holds),
    )


async def settled_audit(
    redis: Redis, db: Database, keys: Keyspace, deal_id: int, wait_s: float
) -> DealAudit:
    """The audit once the pipeline has written every paid entry (or ``wait_s`` has passed):
    an order still in flight is late, not lost."""
    deadline = time.monotonic() + wait_s
    while True:
        found = await audit_deal(redis, db, keys, deal_id)
        # Caught up: nothing read and unacknowledged, and every paid hold has its order. (A
        # count of stream entries would not do: replayed dead letters appear twice.)
        caught_up = found.pipeline_pending == 0 and found.lost_paid_orders == 0
        if caught_up or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.25)
