"""Creators' commissions in the ledger (decision 0046). An attributed order's commission is
earned when it is delivered, on what the buyer kept: ``follow`` posts the difference between
that and what the ledger holds, inside the transaction that moved the order (delivery, a refund
granted, a refund refused), under a name made from that move, so a retried move posts nothing
twice and the amounts never drift.

Until the order settles the commission waits in ``platform:commissions``; settlement pays it
into the shop of the creator's room (``pay_over``, decision 0054), and a move after that goes
on to that shop in the same transaction, so the creator's balance follows what the order owes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import AffiliateDeal
from checkout import ledger, ledger_store
from checkout.ledger import Account
from checkout.models import AffiliateAttribution, LedgerEntry, Order
from checkout.orders import OrderStatus

log = logging.getLogger("livecart.commissions")


EARNED = "commission:"


def earned_name(order_id: int) -> str:
    return f"{EARNED}{order_id}"


def paid_name(order_id: int) -> str:
    return ledger.then(earned_name(order_id), "paid")


def refund_name(order_id: int, refund_id: int, step: str = "") -> str:
    name = ledger.then(earned_name(order_id), f"refund:{refund_id}")
    return ledger.then(name, step) if step else name


async def _attributed(
    conn: AsyncConnection, order_id: int
) -> tuple[AffiliateAttribution, Order, int] | None:
    """The order's attribution, the order, and the shop its commission is paid into."""
    found = (
        await conn.execute(
            core_select(AffiliateAttribution, col(AffiliateDeal.creator_shop_id))
            .join(Order, col(Order.id) == col(AffiliateAttribution.order_id))
            .join(AffiliateDeal, col(AffiliateDeal.deal_id) == col(Order.deal_id))
            .where(col(AffiliateAttribution.order_id) == order_id)
        )
    ).first()
    if found is None:
        return None
    attribution = AffiliateAttribution.model_validate(found._mapping)
    row = (await conn.execute(core_select(Order).where(col(Order.id) == order_id))).one()
    return attribution, Order.model_validate(row._mapping), int(found.creator_shop_id)


async def follow(conn: AsyncConnection, order_id: int, txn: str, now: int) -> int:
    """Bring the order's commission in the ledger to what it is owed now; the amount posted.
    What it owes is held on the selling shop's side (its lines in ``platform:commissions``);
    once settled, the move goes on to the creator's shop (``txn`` then ``creator``)."""
    found = await _attributed(conn, order_id)
    if found is None:
        return 0
    attribution, order, creator_shop_id = found
    kept = max(attribution.base - min(order.refunded, order.total), 0)
    owed = 0 if order.delivered_ms is None else ledger.commission(kept, attribution.rate_bp)
    held = -await ledger_store.order_sum(conn, order_id, Account.COMMISSIONS, order.shop_id)
    move = owed - held
    if not move:
        return 0
    to_creator = order.settled_ms is not None and creator_shop_id > 0
    if to_creator:
        # Settled by a node that did not pay commissions over yet (a rolling upgrade past
        # migration 0024): what waits is paid first, before this move reaches the pool.
        await pay_over(conn, order_id, now)
    shop_account = Account.PENDING if order.settled_ms is None else Account.AVAILABLE
    await ledger_store.post(
        conn,
        ledger.commission_moved(txn, order_id, order.shop_id, order.currency, move, shop_account),
        now,
    )
    if to_creator:
        paid = ledger.commission_paid(
            ledger.then(txn, "creator"), order_id, creator_shop_id, order.currency, move
        )
        await ledger_store.post(conn, paid, now)
    return move


async def pay_over(conn: AsyncConnection, order_id: int, now: int) -> int:
    """At settlement, in its transaction: what ``platform:commissions`` holds for the order
    goes into the shop of the creator's room, withdrawable there. The amount paid."""
    found = await _attributed(conn, order_id)
    if found is None:
        return 0
    _, order, creator_shop_id = found
    if creator_shop_id <= 0:
        # A deal from before migration 0024 whose room is gone: the commission stays in the
        # pool, where the audit (``commission_mismatches``) does not expect it paid.
        log.warning("order %s: no creator's shop to pay its commission into", order_id)
        return 0
    waiting = -await ledger_store.order_sum(conn, order_id, Account.COMMISSIONS)
    if waiting:
        paid = ledger.commission_paid(
            paid_name(order_id), order_id, creator_shop_id, order.currency, waiting
        )
        await ledger_store.post(conn, paid, now)
    return waiting


# -- what the dashboards read ------------------------------------------------------------------

# Orders whose commission may still be earned: paid, not delivered, not given back whole.
AWAITING = (OrderStatus.PAID.value, OrderStatus.AWAITING_SHIPMENT.value, OrderStatus.SHIPPED.value)


@dataclass
class Totals:
    """One currency's commissions: ``pending`` on orders not delivered yet (what they would
    earn now), ``earned`` net of what was given back, ``given_back`` with refunds and lost
    disputes after delivery (net of refunds the provider refused and disputes won), ``paid``
    what of ``earned`` reached the creator's shop with the orders' settlement (decision 0054)."""

    currency: str
    orders: int = 0
    sales: int = 0  # what the attributed orders' buyers kept
    pending: int = 0
    earned: int = 0
    given_back: int = 0
    paid: int = 0

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
    # The selling shop's lines say what the order owes; the creator's shop's, what was paid.
    sellers = col(LedgerEntry.shop_id) == col(AffiliateAttribution.shop_id)
    # What the order earned on delivery is posted under one name; every later move (a refund
    # granted, or refused and so reversed; a dispute lost, or won back) under its own.
    # Summed, those later moves are what was given back and stayed given back.
    later = col(LedgerEntry.txn) != literal(EARNED) + cast(
        col(AffiliateAttribution.order_id), String
    )
    entries = await conn.execute(
        core_select(
            col(AffiliateAttribution.creator_id),
            col(LedgerEntry.currency),
            -func.sum(case((sellers, amount), else_=0)),
            func.sum(case((and_(sellers, later), amount), else_=0)),
            func.sum(case((sellers, 0), else_=amount)),
        )
        .join(
            LedgerEntry,
            col(LedgerEntry.reference)
            == literal("order:") + cast(col(AffiliateAttribution.order_id), String),
        )
        .where(scope, col(LedgerEntry.account) == Account.COMMISSIONS.value)
        .group_by(col(AffiliateAttribution.creator_id), col(LedgerEntry.currency))
    )
    for creator, currency, earned, back, paid in entries.all():
        row = found.setdefault((creator, currency), Totals(currency))
        row.earned, row.given_back, row.paid = int(earned or 0), int(back or 0), int(paid or 0)
    return found
