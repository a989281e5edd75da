"""Orders in SQL: batch persistence from the pipeline, transitions, and scoped reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import func, insert, literal, null, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Product, Sku
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Order, OrderEvent
from checkout.orders import OrderStatus, next_status, shipment_fields
from kernel.clock import now_ms
from kernel.errors import Conflict, NotFound

PAID = OrderStatus.PAID.value  # looked up once: an enum attribute is slow in a 500-row loop


class PaidOrder(NamedTuple):
    """One ``order.paid`` entry from a deal's stream (a tuple: the pipeline makes thousands)."""

    hold_id: str
    deal_id: int
    sku_id: int
    shop_id: int
    buyer_id: str
    quantity: int
    unit_price: int
    currency: str
    payment_ref: str
    paid_ms: int
    shipping: str = ""  # JSON text as the buyer gave it, or empty

    @classmethod
    def from_stream(cls, fields: dict[str, str]) -> PaidOrder:
        return cls(
            hold_id=fields["hold"],
            deal_id=int(fields["deal"]),
            sku_id=int(fields["sku"]),
            shop_id=int(fields["shop"]),
            buyer_id=fields["buyer"],
            quantity=int(fields["qty"]),
            unit_price=int(fields["unit_price"]),
            currency=fields["currency"],
            payment_ref=fields["payment_ref"],
            paid_ms=int(fields["paid_ms"]),
            shipping=fields.get("ship", ""),  # absent in entries written before addresses
        )


@dataclass
class PersistResult:
    inserted: int = 0
    duplicates: int = 0
    stock_shortfalls: int = 0


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    assert session.bind is not None
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Order).on_conflict_do_nothing(index_elements=["hold_id"])
    if dialect == "sqlite":
        return sqlite.insert(Order).on_conflict_do_nothing(index_elements=["hold_id"])
    raise RuntimeError(f"unsupported database dialect {dialect}")


def order_row(p: PaidOrder, now: int) -> dict[str, Any]:
    """The ``orders`` row for a paid hold, as the pipeline inserts it. The shipping address is
    there only when one was given: a JSON value costs every row of a batch (about half the
    insert rate on SQLite) even when it is null."""
    row = {
        "hold_id": p.hold_id,
        "deal_id": p.deal_id,
        "shop_id": p.shop_id,
        "sku_id": p.sku_id,
        "buyer_id": p.buyer_id,
        "quantity": p.quantity,
        "unit_price": p.unit_price,
        "total": p.quantity * p.unit_price,
        "currency": p.currency,
        "status": PAID,
        "payment_ref": p.payment_ref,
        "paid_ms": p.paid_ms,
        "created_ms": now,
        "updated_ms": now,
    }
    if p.shipping:
        row["shipping"] = orjson.loads(p.shipping)
    return row


async def persist_paid_orders(session: AsyncSession, paid: Sequence[PaidOrder]) -> PersistResult:
    """Insert the orders, their first event rows and the stock decrements in one transaction.

    Orders already present (a redelivered entry) are skipped by the unique hold id, and only the
    orders actually inserted take stock, so running the same batch twice changes nothing.
    """
    now = now_ms()
    rows = [order_row(p, now) for p in paid]
    result = PersistResult()
    if not rows:
        return result
    stmt = _insert_ignoring_duplicates(session).returning(
        col(Order.id), col(Order.sku_id), col(Order.quantity)
    )
    # Core statements on the session's connection: one multi-row INSERT per batch, not one ORM
    # flush per order.
    conn = await session.connection()
    inserted: list[Any] = []
    # One INSERT per shape of row (with an address, without): a multi-row INSERT takes rows
    # with the same columns.
    for shape in (True, False):
        group = [row for row in rows if ("shipping" in row) is shape]
        if group:
            inserted += (await conn.execute(stmt, group)).all()
    result.inserted = len(inserted)
    result.duplicates = len(rows) - len(inserted)
    if inserted:
        # One INSERT ... SELECT for all the event rows: a single parameter set instead of
        # another 500-row executemany.
        event_columns = ["order_id", "from_status", "to_status", "at_ms", "actor", "note"]
        event_values = core_select(
            col(Order.id), null(), literal(PAID), literal(now), literal("pipeline"), literal("")
        ).where(col(Order.id).in_([oid for oid, _, _ in inserted]))
        await conn.execute(insert(OrderEvent).from_select(event_columns, event_values))
    taken: dict[int, int] = defaultdict(int)
    for _, sku_id, qty in inserted:
        taken[sku_id] += qty
    for sku_id, qty in sorted(taken.items()):  # sorted: a fixed lock order across workers
        # The units were allocated to the deal when it started; selling them takes them out of
        # both stock and the allocation.
        guarded = await conn.execute(
            update(Sku)
            .where(col(Sku.id) == sku_id, col(Sku.stock) >= qty, col(Sku.allocated) >= qty)
            .values(stock=col(Sku.stock) - qty, allocated=col(Sku.allocated) - qty)
        )
        if guarded.rowcount != 1:
            # Unreachable through the API (stock never drops below the allocation); only a hand
            # edit of the database gets here. The order is paid and is kept; the shortfall is
            # counted (livecart_stock_shortfalls) and left for the seller to reconcile.
            result.stock_shortfalls += 1
    await session.commit()
    return result


async def transition(
    session: AsyncSession,
    order: Order,
    action: str,
    actor: str,
    note: str = "",
    *,
    carrier: str = "",
    tracking_number: str = "",
) -> Order:
    """Move ``order`` by ``action``: a guarded UPDATE plus its event row, in one transaction.
    Shipping records ``carrier`` and ``tracking_number`` on the order in the same UPDATE."""
    current = OrderStatus(order.status)
    target = next_status(current, action)
    extra = shipment_fields(target, carrier, tracking_number)
    now = now_ms()
    conn = await session.connection()
    moved = await conn.execute(
        update(Order)
        .where(col(Order.id) == order.id, col(Order.status) == current.value)
        .values(status=target.value, updated_ms=now, **extra)
    )
    if moved.rowcount != 1:
        # Someone else moved the order between our read and our write: never record a move
        # that did not happen, even if the action would be legal from the new state.
        await session.rollback()
        await session.refresh(order)
        raise Conflict(
            f"The order changed to {order.status} while you acted; look again and retry.",
            code=CheckoutErrorCode.ORDER_CHANGED,
            status=order.status,
        )
    assert order.id is not None
    session.add(
        OrderEvent(
            order_id=order.id,
            from_status=current.value,
            to_status=target.value,
            at_ms=now,
            actor=actor,
            note=note,
        )
    )
    await session.commit()
    await session.refresh(order)
    return order


async def orders_of_buyer(session: AsyncSession, buyer_id: str) -> Sequence[Order]:
    query = select(Order).where(Order.buyer_id == buyer_id).order_by(col(Order.id).desc())
    return (await session.exec(query)).all()


async def orders_of_shops(
    session: AsyncSession, shop_ids: Sequence[int], status: str | None = None
) -> Sequence[Order]:
    query = select(Order).where(col(Order.shop_id).in_(shop_ids)).order_by(col(Order.id).desc())
    if status is not None:
        query = query.where(Order.status == status)
    return (await session.exec(query.limit(1000))).all()


async def orders_of_shops_in(
    session: AsyncSession, shop_ids: Sequence[int], statuses: Sequence[str], limit: int = 200
) -> Sequence[Order]:
    """The shops' newest orders in any of ``statuses`` (all of them when empty)."""
    query = select(Order).where(col(Order.shop_id).in_(shop_ids))
    if statuses:
        query = query.where(col(Order.status).in_(statuses))
    return (await session.exec(query.order_by(col(Order.id).desc()).limit(limit))).all()


async def count_by_status(session: AsyncSession, shop_ids: Sequence[int]) -> dict[str, int]:
    query = (
        core_select(col(Order.status), func.count())
        .where(col(Order.shop_id).in_(shop_ids))
        .group_by(col(Order.status))
    )
    return {
        status: int(n) for status, n in (await (await session.connection()).execute(query)).all()
    }


async def sales_since(
    session: AsyncSession, shop_ids: Sequence[int], since_ms: int
) -> tuple[int, int]:
    """(orders, total in minor units) paid since ``since_ms`` in the shops."""
    query = core_select(func.count(), func.coalesce(func.sum(col(Order.total)), 0)).where(
        col(Order.shop_id).in_(shop_ids), col(Order.paid_ms) >= since_ms
    )
    count, total = (await (await session.connection()).execute(query)).one()
    return int(count), int(total)


@dataclass(frozen=True)
class ItemLine:
    title: str
    variant: str
    image: str | None


async def item_lines(session: AsyncSession, sku_ids: Sequence[int]) -> dict[int, ItemLine]:
    """What each SKU is, for order lists: product title, variant and first image."""
    if not sku_ids:
        return {}
    query = (
        core_select(col(Sku.id), col(Product.title), col(Sku.variant), col(Product.image_urls))
        .join(Product, col(Product.id) == col(Sku.product_id))
        .where(col(Sku.id).in_(set(sku_ids)))
    )
    rows = (await (await session.connection()).execute(query)).all()
    return {
        sku_id: ItemLine(title, variant, images[0] if images else None)
        for sku_id, title, variant, images in rows
        if sku_id is not None
    }


async def order_for_shops(session: AsyncSession, order_id: int, shop_ids: Sequence[int]) -> Order:
    order = await session.get(Order, order_id)
    if order is None or order.shop_id not in shop_ids:
        raise NotFound(
            "No such order in your shops.",
            code=CheckoutErrorCode.ORDER_NOT_FOUND,
            order_id=order_id,
        )
    return order


async def order_for_buyer(session: AsyncSession, hold_id: str, buyer_id: str) -> Order:
    found = await session.exec(select(Order).where(Order.hold_id == hold_id))
    order = found.first()
    if order is None or order.buyer_id != buyer_id:
        raise NotFound(
            "No such order among yours (yet).",
            code=CheckoutErrorCode.ORDER_NOT_FOUND,
            hold_id=hold_id,
        )
    return order


async def events_of(session: AsyncSession, order_id: int) -> Sequence[OrderEvent]:
    query = select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(col(OrderEvent.id))
    return (await session.exec(query)).all()
