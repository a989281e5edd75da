"""``livecart reconcile`` (decision 0040): make Redis agree with what SQL knows was paid for.

Redis is the fast copy of a deal's stock; the durable record of money is SQL (a payment
attempt marked committed once its sale was, the order the pipeline wrote) and the provider. A
failover that promotes a replica which missed the last writes can forget a sale: then the
buyer's money is taken, the order may never be written (its order.paid entry went with the
sale) and the unit is on sale again. For each deal whose keys Redis still keeps, this finds

- ``paid_sale_forgotten``: a committed attempt, no SQL order, and Redis without the sale;
- ``order_without_sale``: a SQL order whose hold Redis does not have as sold;
- ``sale_without_record``: a hold Redis has as sold with neither an order nor a committed
  attempt once the deal's orders stream is drained (SQL lost it: a restore from backup).

With ``repair`` the first two are adopted into Redis, one atomic Function call each
(``lc_adopt_sale``): the hold becomes sold with its units, and a forgotten sale's order.paid
goes back on the stream for the pipeline to write the order. When its units were sold again
meanwhile the call changes nothing and the finding stays, for an operator to refund one buyer.
The third is only reported: Redis is never the source SQL is repaired from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlmodel import col, select

from catalog.models import Deal
from checkout.attempts import AttemptStatus
from checkout.hold_states import HoldRecord, HoldState
from checkout.holds import AdoptedSale, HoldStore
from checkout.keys import DEAL_KEYS_TTL_S, Keyspace, deal_id_of_hold
from checkout.models import Order, PaymentAttempt
from checkout.order_store import of_keyspace
from checkout.pipeline import OrderStream
from kernel.clock import now_ms
from kernel.db import Database

MISSING = "missing"  # a hold Redis has no record of


@dataclass(frozen=True)
class Finding:
    deal_id: int
    hold_id: str
    kind: str  # paid_sale_forgotten, order_without_sale or sale_without_record
    redis_state: str  # the hold's state in Redis, or "missing"
    # What was done: "adopted", "agrees" (Redis had it by the time of the call), "to adopt"
    # (report only), or "flagged: <why>" (an operator's decision).
    action: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        return self.action in ("adopted", "agrees")


@dataclass(frozen=True)
class Reconciliation:
    deals: list[int]
    findings: list[Finding]

    @property
    def left(self) -> list[Finding]:
        return [f for f in self.findings if not f.settled]

    @property
    def ok(self) -> bool:
        return not self.left

    def json(self) -> dict[str, Any]:
        return {
            "deals": self.deals,
            "findings": [asdict(f) for f in self.findings],
            "left": len(self.left),
            "ok": self.ok,
        }


@dataclass(frozen=True)
class DealRecords:
    """What SQL and Redis know of one deal's sales."""

    deal: Deal
    committed: list[PaymentAttempt]
    orders: dict[str, Order]  # by hold id
    holds: dict[str, HoldRecord]  # Redis's, by hold id


async def deals_in_view(db: Database, keys: Keyspace) -> list[int]:
    """Deals with a committed attempt or an order of this keyspace recent enough that Redis
    still keeps their keys (older ones have nothing left to compare)."""
    since = now_ms() - DEAL_KEYS_TTL_S * 1000
    async with db.session() as session:
        ordered = await session.exec(
            select(col(Order.deal_id))
            .where(of_keyspace(keys.prefix), col(Order.paid_ms) >= since)
            .distinct()
        )
        attempted = await session.exec(
            select(col(PaymentAttempt.hold_id)).where(
                col(PaymentAttempt.keyspace) == keys.prefix,
                col(PaymentAttempt.status) == AttemptStatus.COMMITTED.value,
                col(PaymentAttempt.updated_ms) >= since,
            )
        )
        found = {d for d in ordered.all() if d is not None}
        found |= {d for h in attempted.all() if (d := deal_id_of_hold(h)) is not None}
    return sorted(found)


async def records_of(redis: Redis, db: Database, keys: Keyspace, deal_id: int) -> DealRecords:
    async with db.session() as session:
        deal = await session.get(Deal, deal_id)
        attempts = await session.exec(
            select(PaymentAttempt).where(
                col(PaymentAttempt.keyspace) == keys.prefix,
                col(PaymentAttempt.status) == AttemptStatus.COMMITTED.value,
                col(PaymentAttempt.hold_id).startswith(f"{deal_id}-"),
            )
        )
        orders = await session.exec(select(Order).where(col(Order.deal_id) == deal_id))
        committed, ordered = list(attempts.all()), list(orders.all())
    if deal is None:
        raise LookupError(f"deal {deal_id} is not in the database")
    return DealRecords(
        deal=deal,
        committed=[a for a in committed if deal_id_of_hold(a.hold_id) == deal_id],
        orders={o.hold_id: o for o in ordered},
        holds=await HoldStore(redis, keys).hold_records(deal_id),
    )


def _state(records: DealRecords, hold_id: str) -> str:
    held = records.holds.get(hold_id)
    return held.state.value if held is not None else MISSING


def _sold(records: DealRecords, hold_id: str) -> bool:
    held = records.holds.get(hold_id)
    return held is not None and held.state is HoldState.SOLD


def _from_order(order: Order, attempt: str) -> AdoptedSale:
    return AdoptedSale(
        deal_id=order.deal_id or 0,
        hold_id=order.hold_id,
        buyer=order.buyer_id,
        qty=order.quantity,
        unit_price=order.unit_price,
        payment_ref=order.payment_ref,
        attempt=attempt,
        shipping=json.dumps(order.shipping) if order.shipping else "",
    )


def _from_attempt(records: DealRecords, attempt: PaymentAttempt) -> AdoptedSale | str:
    """The forgotten sale as its attempt describes it, or why its units cannot be told."""
    held = records.holds.get(attempt.hold_id)
    if held is not None:
        qty = held.qty
    elif records.deal.kind == "auction":
        qty = 1  # a lot is one unit, at the hammer price (the attempt's amount)
    elif records.deal.deal_price and attempt.amount % records.deal.deal_price == 0:
        qty = attempt.amount // records.deal.deal_price
    else:
        return f"{attempt.amount} is not a whole number of units at {records.deal.deal_price}"
    if qty < 1 or attempt.amount % qty:
        return f"{attempt.amount} does not divide into {qty} units"
    return AdoptedSale(
        deal_id=records.deal.id or 0,
        hold_id=attempt.hold_id,
        buyer=attempt.buyer_id,
        qty=qty,
        unit_price=attempt.amount // qty,
        payment_ref=attempt.payment_ref,
        attempt=attempt.attempt,
        shipping=attempt.shipping,
    )


async def _adopt(
    store: HoldStore, sale: AdoptedSale, *, announce: bool, repair: bool
) -> tuple[str, dict[str, Any]]:
    detail: dict[str, Any] = {"buyer": sale.buyer, "qty": sale.qty, "payment_ref": sale.payment_ref}
    if not repair:
        return "to adopt", detail
    word, units = await store.adopt_sale(sale, announce=announce)
    if word == "oversold":
        return "flagged: oversold", {**detail, "available": units}
    if word in ("adopted", "agrees"):
        return word, detail
    return f"flagged: {word}", detail


async def reconcile_deal(
    redis: Redis, db: Database, keys: Keyspace, deal_id: int, *, repair: bool
) -> list[Finding]:
    store = HoldStore(redis, keys)
    records = await records_of(redis, db, keys, deal_id)
    findings: list[Finding] = []
    attempts = {a.hold_id: a for a in records.committed}
    for attempt in records.committed:
        hold_id = attempt.hold_id
        if _sold(records, hold_id) or hold_id in records.orders:
            continue  # agrees, or an order: judged below
        sale = _from_attempt(records, attempt)
        if isinstance(sale, str):
            action, detail = f"flagged: {sale}", {"buyer": attempt.buyer_id}
        else:
            action, detail = await _adopt(store, sale, announce=True, repair=repair)
        state = _state(records, hold_id)
        findings.append(Finding(deal_id, hold_id, "paid_sale_forgotten", state, action, detail))
    for hold_id, order in records.orders.items():
        if _sold(records, hold_id):
            continue
        named = attempts.get(hold_id)
        sale = _from_order(order, named.attempt if named else "")
        action, detail = await _adopt(store, sale, announce=False, repair=repair)
        state = _state(records, hold_id)
        findings.append(Finding(deal_id, hold_id, "order_without_sale", state, action, detail))
    if await OrderStream(redis, keys).drained(deal_id):
        for hold_id, held in records.holds.items():
            unrecorded = hold_id not in records.orders and hold_id not in attempts
            if held.state is HoldState.SOLD and unrecorded:
                found = {"buyer": held.buyer, "qty": held.qty}
                findings.append(
                    Finding(deal_id, hold_id, "sale_without_record", held.state, "flagged", found)
                )
    return findings


async def reconcile(
    redis: Redis, db: Database, keys: Keyspace, *, deal_id: int | None = None, repair: bool
) -> Reconciliation:
    deals = [deal_id] if deal_id is not None else await deals_in_view(db, keys)
    findings: list[Finding] = []
    for deal in deals:
        findings += await reconcile_deal(redis, db, keys, deal, repair=repair)
    return Reconciliation(deals, findings)
