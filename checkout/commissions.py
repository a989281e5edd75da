"""Creators' commissions in the ledger (decision 0046). An attributed order's commission is
earned when it is delivered, on what the buyer kept: ``follow`` posts the difference between
that and what the ledger holds, inside the transaction that moved the order (delivery, a refund
granted, a refund refused), under a name made from that move, so a retried move posts nothing
twice and the amounts never drift."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from checkout import ledger, ledger_store
from checkout.ledger import Account
from checkout.models import AffiliateAttribution, LedgerEntry, Order
from checkout.orders import OrderStatus


def earned_name(order_id: int) -> str:
    return f"commission:{order_id}"


def refund_name(order_id: int, refund_id: int, step: str = "") -> str:
    name = ledger.then(earned_name(order_id), f"refund:{refund_id}")
    return ledger.then(name, step) if step else name


async def follow(conn: AsyncConnection, order_id: int, txn: str, now: int) -> int:
    """Bring the order's commission in the ledger to what it is owed now; the amount posted."""
    found = (
        await conn.execute(
            core_select(AffiliateAttribution).where(col(AffiliateAttribution.order_id) == order_id)
        )
    ).first()
    if found is None:
        return 0
    attribution = AffiliateAttribution.model_validate(found._mapping)
    row = (await conn.execute(core_select(Order).where(col(Order.id) == order_id))).one()
    order = Order.model_validate(row._mapping)
    kept = max(attribution.base - min(order.refunded, order.total), 0)
    owed = 0 if order.delivered_ms is None else ledger.commission(kept, attribution.rate_bp)
    held = -await ledger_store.order_sum(conn, order_id, Account.COMMISSIONS)
    move = owed - held
    if move:
        shop_account = Account.PENDING if order.settled_ms is None else Account.AVAILABLE
        await ledger_store.post(
            conn,
            ledger.commission_moved(
                txn, order_id, order.shop_id, order.currency, move, shop_account
            ),
            now,
        )
    return move


# -- what the dashboards read ------------------------------------------------------------------

# Orders whose commission may still be earned: paid, not delivered, not given back whole.
AWAITING = (OrderStatus.PAID.value, OrderStatus.AWAITING_SHIPMENT.value, OrderStatus.SHIPPED.value)


@dataclass
class Totals:
    """One currency's commissions: ``pending`` on orders not delivered yet (what they would
    earn now), ``earned`` net of what was given back, ``given_back`` with refunds."""

    currency: str
    orders: int = 0
    sales: int = 0  # what the attributed orders' buyers kept
    pending: int = 0
    earned: int = 0
    given_back: int = 0

    def json(self) -> dict[str, Any]:
        return asdict(self)


async def totals(
    session: AsyncSession, *, creator_id: int | None = None, shop_ids: Sequence[int] = ()
) -> dict[tuple[int, str], Totals]:
    """Per (creator, currency) when asked for shops' creators, per (creator, currency) of one
    creator: only the rows the caller may see are read (``creator_id`` or ``shop_ids``)."""
    scope = (
        col(AffiliateAttribution.creator_id) == creator_id
        if creator_id is not None
        else col(AffiliateAttribution.shop_id).in_(shop_ids)
    )
    kept = col(AffiliateAttribution.base) - col(Order.refunded)
    pending = case(
        (
            and_(col(Order.status).in_(AWAITING), kept > 0),
            kept * col(AffiliateAttribution.rate_bp) // 10_000,
        ),
        else_=0,
    )
    conn = await session.connection()
    rows = await conn.execute(
        core_select(
            col(AffiliateAttribution.creator_id),
            col(AffiliateAttribution.currency),
            func.count(),
            func.sum(case((kept > 0, kept), else_=0)),
            func.sum(pending),
        )
        .join(Order, col(Order.id) == col(AffiliateAttribution.order_id))
        .where(scope)
        .group_by(col(AffiliateAttribution.creator_id), col(AffiliateAttribution.currency))
    )
    found = {
        (creator, currency): Totals(currency, int(n), int(sales or 0), int(waiting or 0))
        for creator, currency, n, sales, waiting in rows.all()
    }
    amount = col(LedgerEntry.amount)
    entries = await conn.execute(
        core_select(
            col(AffiliateAttribution.creator_id),
            col(LedgerEntry.currency),
            -func.sum(amount),
            func.sum(case((amount > 0, amount), else_=0)),
        )
        .join(
            LedgerEntry,
            col(LedgerEntry.reference)
            == literal("order:") + cast(col(AffiliateAttribution.order_id), String),
        )
        .where(scope, col(LedgerEntry.account) == Account.COMMISSIONS.value)
        .group_by(col(AffiliateAttribution.creator_id), col(LedgerEntry.currency))
    )
    for creator, currency, earned, back in entries.all():
        row = found.setdefault((creator, currency), Totals(currency))
        row.earned, row.given_back = int(earned or 0), int(back or 0)
    return found
