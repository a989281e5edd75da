"""Disputes (decision 0027; docs/money.md, "Disputes"): a buyer disputes a charge with their bank,
which takes the money back at once; the provider tells us by events, and the bank decides.

The provider decides, so nothing here is guarded against the order's admission guards: opening
adds the amount to ``orders.refunded`` whatever it holds, and winning takes it off. A lost
dispute is the shop's: it bears the amount, less the fee on it, given back as with a refund. An
order with an open dispute takes no refund (checkout.refunds), does not settle
(checkout.settlement), and a settled one's disputed amount is not withdrawable (checkout.payouts).

A snapshot is applied from (the stored state, the snapshot's state): each move forward posts its
ledger transaction, named by the dispute's row (``dispute:<id>:opened``, ``…:won``, ``…:lost``),
so a ``closed`` arriving before its ``created`` posts both and the late ``created`` nothing (its
version is lower). Everything runs in the caller's open transaction: the webhook's, which
records the event with it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from checkout import commissions, ledger, ledger_store
from checkout.ledger import Account
from checkout.models import Dispute, Order, OrderEvent
from checkout.orders import TRANSITIONS, OrderStatus
from checkout.payments import DisputeStatus

log = logging.getLogger("livecart.disputes")

OPEN = DisputeStatus.NEEDS_RESPONSE.value
ACTOR = "provider"  # who moved the money: the buyer's bank, through the provider
MAX_ID = 64  # Dispute.provider_id, Order.payment_ref


class Applied(enum.StrEnum):
    CHANGED = "changed"  # the snapshot moved the dispute (and the money) forward
    UNCHANGED = "unchanged"  # stale, a repeat, or a closed dispute: nothing to do
    NO_ORDER = "no_order"  # no order has the disputed charge (yet: see checkout.webhooks)


@dataclass(frozen=True)
class DisputeSnapshot:
    """A dispute object as an event carries it."""

    provider_id: str
    charge: str
    amount: int
    currency: str
    status: DisputeStatus
    version: int


def snapshot_of(obj: dict[str, Any]) -> DisputeSnapshot | None:
    """The event's dispute, or None when it is not one livecart can act on."""
    provider_id, charge, amount, currency, status, version = (
        obj.get(k) for k in ("id", "charge", "amount", "currency", "status", "version")
    )
    for text in (provider_id, charge):
        if not (isinstance(text, str) and 0 < len(text) <= MAX_ID and "\x00" not in text):
            return None
    for number in (amount, version):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            return None
    if not (isinstance(currency, str) and len(currency) == 3) or status not in tuple(DisputeStatus):
        return None
    assert isinstance(provider_id, str) and isinstance(charge, str)
    assert isinstance(amount, int) and isinstance(version, int)
    return DisputeSnapshot(provider_id, charge, amount, currency, DisputeStatus(status), version)


async def apply_snapshot(
    conn: AsyncConnection, dialect: str, keyspace: str, snap: DisputeSnapshot, now: int
) -> Applied:
    """Bring the local dispute up to ``snap`` in the caller's open transaction."""
    row = await _by_provider_id(conn, snap.provider_id)
    opened = False
    if row is None:
        order = await _order_of_charge(conn, snap.charge)
        if order is None:
            return Applied.NO_ORDER
        if snap.currency != order.currency or snap.amount <= 0:
            log.warning("dispute %s does not fit order %s: ignored", snap.provider_id, order.id)
            return Applied.UNCHANGED
        row = await _insert(conn, dialect, keyspace, snap, order, now)
        if row is None:  # another delivery inserted it meanwhile: move on from what it stored
            row = await _by_provider_id(conn, snap.provider_id)
            assert row is not None
        else:
            await _opened(conn, row, now)
            opened = True
    # States only move forward (needs_response -> won | lost), and a snapshot older than what
    # was applied changes nothing.
    moved = await conn.execute(
        update(Dispute)
        .where(
            col(Dispute.id) == row.id,
            col(Dispute.status) == OPEN,
            col(Dispute.version) < snap.version,
        )
        .values(status=snap.status.value, version=snap.version, updated_ms=now)
    )
    if moved.rowcount != 1:
        return Applied.CHANGED if opened else Applied.UNCHANGED
    if snap.status is DisputeStatus.WON:
        await _won(conn, row, now)
    elif snap.status is DisputeStatus.LOST:
        await _lost(conn, row, now)
    return Applied.CHANGED


# -- the moves ----------------------------------------------------------------------------------


async def _opened(conn: AsyncConnection, dispute: Dispute, now: int) -> None:
    """The bank took the amount back: the order counts it as given back (unguarded: the provider
    decided, not us), and the provider holds that much less."""
    assert dispute.id is not None
    await _add_refunded(conn, dispute.order_id, dispute.amount, now)
    await _follow_commission(conn, dispute, "opened", now)
    await ledger_store.post(
        conn,
        ledger.dispute_opened(
            dispute.id, dispute.order_id, dispute.shop_id, dispute.currency, dispute.amount
        ),
        now,
    )
    await _history(conn, dispute, "opened: taken back by the buyer's bank", now)


async def _won(conn: AsyncConnection, dispute: Dispute, now: int) -> None:
    assert dispute.id is not None
    await _add_refunded(conn, dispute.order_id, -dispute.amount, now)
    await _follow_commission(conn, dispute, "won", now)
    await ledger_store.post(
        conn,
        ledger.dispute_won(
            dispute.id, dispute.order_id, dispute.shop_id, dispute.currency, dispute.amount
        ),
        now,
    )
    await _history(conn, dispute, "won: the money came back", now)


async def _lost(conn: AsyncConnection, dispute: Dispute, now: int) -> None:
    """The shop bears it, from pending before the order settled and available after (an open
    dispute holds settlement, so ``settled_ms`` cannot move under us); the fee on what the buyer
    no longer keeps goes back to it. An order the bank and refunds took back whole is
    ``refunded``."""
    assert dispute.id is not None
    # Take the order's row first: what is read next stays as read until commit.
    await conn.execute(
        update(Order).where(col(Order.id) == dispute.order_id).values(updated_ms=now)
    )
    order = await _order(conn, dispute.order_id)
    fee_held = -await ledger_store.order_sum(conn, dispute.order_id, Account.FEES)
    # refunded holds the dispute since it opened. It can exceed the total while a refund granted
    # before the dispute waits for the provider's refusal (the bank took what the provider had
    # not given back yet): the fee is then judged on nothing kept.
    kept_back = min(order.refunded, order.total)
    fee_back = ledger.fee_returned(fee_held, order.total, order.fee_bps, kept_back)
    shop_account = Account.PENDING if order.settled_ms is None else Account.AVAILABLE
    txn = ledger.dispute_lost(
        dispute.id,
        dispute.order_id,
        dispute.shop_id,
        dispute.currency,
        dispute.amount,
        fee_back,
        shop_account,
    )
    await ledger_store.post(conn, txn, now)
    status = OrderStatus(order.status)
    closed = order.refunded >= order.total and OrderStatus.REFUNDED in TRANSITIONS[status]
    if closed:
        await conn.execute(
            update(Order).where(col(Order.id) == order.id).values(status=OrderStatus.REFUNDED.value)
        )
    target = OrderStatus.REFUNDED if closed else status
    await _history(conn, dispute, "lost: the shop bears it", now, status, target)


async def _follow_commission(conn: AsyncConnection, dispute: Dispute, step: str, now: int) -> None:
    """A creator's commission is on what the buyer kept (decision 0046): the bank taking the
    money back gives it back, as a refund does, and a won dispute earns it again. A lost one
    moves nothing more: the amount was counted as given back when the dispute opened."""
    assert dispute.id is not None
    name = ledger.then(commissions.earned_name(dispute.order_id), f"dispute:{dispute.id}")
    await commissions.follow(conn, dispute.order_id, ledger.then(name, step), now)


async def _add_refunded(conn: AsyncConnection, order_id: int, amount: int, now: int) -> None:
    await conn.execute(
        update(Order)
        .where(col(Order.id) == order_id)
        .values(refunded=col(Order.refunded) + amount, updated_ms=now)
    )


async def _history(
    conn: AsyncConnection,
    dispute: Dispute,
    what: str,
    now: int,
    from_status: OrderStatus | None = None,
    to_status: OrderStatus | None = None,
) -> None:
    """A line in the order's history: the order shows its dispute there."""
    if from_status is None or to_status is None:
        current = OrderStatus((await _order(conn, dispute.order_id)).status)
        from_status = to_status = current
    await conn.execute(
        insert(OrderEvent).values(
            order_id=dispute.order_id,
            from_status=from_status.value,
            to_status=to_status.value,
            at_ms=now,
            actor=ACTOR,
            note=f"dispute {dispute.provider_id} of {dispute.amount} {dispute.currency} "
            f"(minor units) {what}",
        )
    )


# -- reads --------------------------------------------------------------------------------------


def open_on_order() -> Any:
    """SQL: the order in the enclosing query (``orders``) has an open dispute."""
    return exists().where(and_(col(Dispute.order_id) == col(Order.id), col(Dispute.status) == OPEN))


async def open_dispute_of(conn: AsyncConnection, order_id: int) -> Dispute | None:
    row = (
        await conn.execute(
            core_select(Dispute)
            .where(col(Dispute.order_id) == order_id, col(Dispute.status) == OPEN)
            .limit(1)
        )
    ).first()
    return None if row is None else Dispute.model_validate(row._mapping)


async def held_back(conn: AsyncConnection, shop_id: int, currency: str) -> int:
    """What open disputes hold back from the shop's available balance: their amounts on its
    settled orders (an unsettled order's money is still pending, and waits for the dispute)."""
    found = await conn.execute(
        core_select(func.coalesce(func.sum(col(Dispute.amount)), 0))
        .join(Order, col(Order.id) == col(Dispute.order_id))
        .where(
            col(Dispute.shop_id) == shop_id,
            col(Dispute.currency) == currency,
            col(Dispute.status) == OPEN,
            col(Order.settled_ms).is_not(None),
        )
    )
    return int(found.scalar_one())


async def of_order(conn: AsyncConnection, order_id: int) -> list[Dispute]:
    rows = await conn.execute(
        core_select(Dispute).where(col(Dispute.order_id) == order_id).order_by(col(Dispute.id))
    )
    return [Dispute.model_validate(r._mapping) for r in rows.all()]


async def _by_provider_id(conn: AsyncConnection, provider_id: str) -> Dispute | None:
    row = (
        await conn.execute(core_select(Dispute).where(col(Dispute.provider_id) == provider_id))
    ).first()
    return None if row is None else Dispute.model_validate(row._mapping)


async def _order_of_charge(conn: AsyncConnection, charge_id: str) -> Order | None:
    row = (
        await conn.execute(
            core_select(Order)
            .where(col(Order.payment_ref) == charge_id)
            .order_by(col(Order.id))
            .limit(1)
        )
    ).first()
    return None if row is None else Order.model_validate(row._mapping)


async def _order(conn: AsyncConnection, order_id: int) -> Order:
    row = (await conn.execute(core_select(Order).where(col(Order.id) == order_id))).one()
    return Order.model_validate(row._mapping)


async def _insert(
    conn: AsyncConnection,
    dialect: str,
    keyspace: str,
    snap: DisputeSnapshot,
    order: Order,
    now: int,
) -> Dispute | None:
    """The dispute's row, open at version 0 (the snapshot's state is applied next); None when
    its provider id is there already (a concurrent delivery waits on the unique index)."""
    statement: Any = (
        postgresql.insert(Dispute) if dialect == "postgresql" else sqlite.insert(Dispute)
    )
    values: dict[str, Any] = {
        "provider_id": snap.provider_id,
        "keyspace": keyspace,
        "order_id": order.id,
        "shop_id": order.shop_id,
        "amount": snap.amount,
        "currency": order.currency,
        "status": OPEN,
        "version": 0,
        "created_ms": now,
        "updated_ms": now,
    }
    inserted = await conn.execute(
        statement.values(**values)
        .on_conflict_do_nothing(index_elements=["provider_id"])
        .returning(col(Dispute.id))
    )
    new_id = inserted.scalar_one_or_none()
    return None if new_id is None else Dispute(id=int(new_id), **values)
