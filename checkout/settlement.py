"""Settlement (decision 0027, section 3): a number of days after an order is delivered, its net
amount (the total, less the fee, less refunds) moves from the shop's pending balance to its
available one, and the order is completed; a creator's commission on it is paid into the shop
of the creator's room in the same transaction (decision 0054). An order with an open buyer
request or an open dispute waits until it is resolved; one never marked delivered never
settles."""

from __future__ import annotations

import logging

from sqlalchemy import and_, exists, insert, update
from sqlalchemy import select as core_select
from sqlmodel import col

from checkout import commissions, disputes, ledger, ledger_store, order_store
from checkout.ledger import Account
from checkout.models import Order, OrderEvent, ReturnRequest
from checkout.orders import OrderStatus
from checkout.return_states import OPEN_REQUESTS
from kernel.db import Database

log = logging.getLogger("livecart.settlement")

# Delivered orders settle; one the seller completed by hand before settling does too.
SETTLING = (OrderStatus.DELIVERED.value, OrderStatus.COMPLETED.value)


async def settle_due(
    db: Database, now: int, after_ms: int, limit: int = 500, keyspace: str | None = None
) -> int:
    """Settle every order delivered at least ``after_ms`` before ``now`` (of ``keyspace``'s
    orders, when given: see ``order_store.of_keyspace``)."""
    scope = [] if keyspace is None else [order_store.of_keyspace(keyspace)]
    open_request = exists().where(
        and_(
            col(ReturnRequest.order_id) == col(Order.id),
            col(ReturnRequest.status).in_([s.value for s in OPEN_REQUESTS]),
        )
    )
    async with db.session() as session:
        conn = await session.connection()
        due = (
            await conn.execute(
                core_select(col(Order.id))
                .where(
                    col(Order.status).in_(SETTLING),
                    col(Order.settled_ms).is_(None),
                    col(Order.delivered_ms).is_not(None),
                    col(Order.delivered_ms) <= now - after_ms,
                    ~open_request,
                    ~disputes.open_on_order(),
                    *scope,
                )
                .order_by(col(Order.delivered_ms))
                .limit(limit)
            )
        ).scalars()
        order_ids = [order_id for order_id in due if order_id is not None]
    settled = 0
    for order_id in order_ids:
        settled += await settle(db, order_id, now)
    return settled


async def settle(db: Database, order_id: int, now: int) -> bool:
    """Settle one order, once: the guarded UPDATE on ``settled_ms IS NULL`` serializes it with
    refunds of the same order, which read the same column to pick the shop's account. A dispute
    opened since the order was found holds it (opening also moves ``refunded``, guarded too)."""
    async with db.session() as session:
        conn = await session.connection()
        row = (await conn.execute(core_select(Order).where(col(Order.id) == order_id))).first()
        if row is None:
            return False
        order = Order.model_validate(row._mapping)
        moved = await conn.execute(
            update(Order)
            .where(
                col(Order.id) == order_id,
                col(Order.settled_ms).is_(None),
                col(Order.status) == order.status,
                col(Order.refunded) == order.refunded,
                ~disputes.open_on_order(),
            )
            .values(settled_ms=now, status=OrderStatus.COMPLETED.value, updated_ms=now)
        )
        if moved.rowcount != 1:  # refunded or moved meanwhile: the next pass looks again
            await session.rollback()
            return False
        net = -await ledger_store.order_sum(conn, order_id, Account.PENDING)
        await ledger_store.post(
            conn, ledger.settlement(order_id, order.shop_id, order.currency, net), now
        )
        # A creator's commission on the order is paid into their shop with it (decision 0054).
        await commissions.pay_over(conn, order_id, now)
        if order.status != OrderStatus.COMPLETED.value:
            await conn.execute(
                insert(OrderEvent).values(
                    order_id=order_id,
                    from_status=order.status,
                    to_status=OrderStatus.COMPLETED.value,
                    at_ms=now,
                    actor="settlement",
                    note=f"{net} {order.currency} (minor units) available to withdraw",
                )
            )
        await session.commit()
    log.info("order %s settled: %s %s available", order_id, net, order.currency)
    return True
