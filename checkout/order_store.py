"""Orders in SQL: batch persistence from the pipeline, transitions, and scoped reads."""

from __future__ import annotations

import enum
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import String, case, cast, exists, func, insert, literal, null, union_all, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from catalog.models import AffiliateDeal, Product, Sku
from checkout import commissions, deadlines
from checkout.error_codes import CheckoutErrorCode
from checkout.ledger import Account
from checkout.models import (
    AffiliateAttribution,
    LedgerEntry,
    Order,
    OrderEvent,
    OrderLine,
    ReturnRequest,
)
from checkout.orders import OrderStatus, next_status, shipment_fields
from checkout.return_states import OPEN_REQUESTS, RequestKind
from checkout.shelf import Line, decode_lines
from kernel.clock import now_ms
from kernel.errors import Conflict, NotFound

PAID = OrderStatus.PAID.value  # looked up once: an enum attribute is slow in a 500-row loop


class PaidOrder(NamedTuple):
    """One ``order.paid`` entry from a deal's or a shelf's stream (a tuple: the pipeline makes
    thousands). A shelf's has no deal and its ``lines``; sku_id, quantity and unit_price are
    then its first line's SKU, its units in all and that line's price (decision 0028)."""

    hold_id: str
    deal_id: int | None
    sku_id: int
    shop_id: int
    buyer_id: str
    quantity: int
    unit_price: int
    currency: str
    payment_ref: str
    paid_ms: int
    shipping: str = ""  # JSON text as the buyer gave it, or empty
    lines: tuple[Line, ...] = ()
    shipping_fee: int = 0
    shipping_discount: int = 0
    voucher: str = ""
    voucher_discount: int = 0

    @property
    def total(self) -> int:
        if self.lines:
            lines = sum(line.total for line in self.lines)
            return lines + self.shipping_fee - self.shipping_discount
        return self.quantity * self.unit_price

    @classmethod
    def from_stream(cls, fields: dict[str, str]) -> PaidOrder:
        if "lines" in fields:
            lines = decode_lines(fields["lines"])
            return cls(
                hold_id=fields["hold"],
                deal_id=None,
                sku_id=lines[0].sku_id,
                shop_id=int(fields["shop"]),
                buyer_id=fields["buyer"],
                quantity=sum(line.qty for line in lines),
                unit_price=lines[0].unit_price,
                currency=fields["currency"],
                payment_ref=fields["payment_ref"],
                paid_ms=int(fields["paid_ms"]),
                shipping=fields.get("ship", ""),
                lines=lines,
                shipping_fee=int(fields["shipping_fee"]),
                shipping_discount=int(fields["shipping_off"]),
                voucher=fields["voucher"],
                voucher_discount=int(fields["voucher_off"]),
            )
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


@dataclass(frozen=True)
class MoneyTerms:
    """What the pipeline stamps on each order it writes, from settings (decision 0027): the
    platform's fee rate, and the ship-by and hard ship limit after payment; and when delivery
    is expected after shipping (stamped by ``transition``)."""

    fee_bps: int = 500
    ship_by_ms: int = 72 * 3_600_000
    ship_limit_ms: int = 120 * 3_600_000
    deliver_within_ms: int = 7 * 86_400_000


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


def of_keyspace(keyspace: str) -> Any:
    """The orders a deployment's rules act on: its own, and those older than the column."""
    return col(Order.keyspace).in_((keyspace, ""))


def order_row(
    p: PaidOrder, now: int, terms: MoneyTerms = MoneyTerms(), keyspace: str = ""
) -> dict[str, Any]:
    """The ``orders`` row for a paid hold, as the pipeline inserts it. The shipping address is
    there only when one was given: a JSON value costs every row of a batch (about half the
    insert rate on SQLite) even when it is null."""
    row = {
        "hold_id": p.hold_id,
        "keyspace": keyspace,
        "deal_id": p.deal_id,
        "shop_id": p.shop_id,
        "sku_id": p.sku_id,
        "buyer_id": p.buyer_id,
        "quantity": p.quantity,
        "unit_price": p.unit_price,
        "total": p.total,
        "currency": p.currency,
        "status": PAID,
        "payment_ref": p.payment_ref,
        "paid_ms": p.paid_ms,
        "created_ms": now,
        "updated_ms": now,
        "fee_bps": terms.fee_bps,
        "ship_by_ms": p.paid_ms + terms.ship_by_ms,
        "ship_limit_ms": p.paid_ms + terms.ship_limit_ms,
    }
    if p.shipping:
        row["shipping"] = orjson.loads(p.shipping)
    if p.lines:  # only a shelf order has these to say (a deal's row stays as short as it was)
        row["discount"] = sum(line.off for line in p.lines)
        row["shipping_fee"] = p.shipping_fee
        row["shipping_discount"] = p.shipping_discount
        row["voucher"] = p.voucher
        row["voucher_discount"] = p.voucher_discount
    return row


async def persist_paid_orders(
    session: AsyncSession,
    paid: Sequence[PaidOrder],
    terms: MoneyTerms = MoneyTerms(),
    keyspace: str = "",
) -> PersistResult:
    """Insert the orders, their first event rows, their sales in the ledger and the stock
    decrements in one transaction.

    Orders already present (a redelivered entry) are skipped by the unique hold id, and only the
    orders actually inserted take stock, so running the same batch twice changes nothing.
    """
    now = now_ms()
    rows = [order_row(p, now, terms, keyspace) for p in paid]
    result = PersistResult()
    if not rows:
        return result
    stmt = _insert_ignoring_duplicates(session).returning(
        col(Order.id), col(Order.sku_id), col(Order.quantity), col(Order.hold_id)
    )
    # Core statements on the session's connection: one multi-row INSERT per batch, not one ORM
    # flush per order.
    conn = await session.connection()
    inserted: list[Any] = []
    # One INSERT per shape of row (with an address or not, from a deal or a shelf): a
    # multi-row INSERT takes rows with the same columns.
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shapes[tuple(row)].append(row)
    for group in shapes.values():
        inserted += (await conn.execute(stmt, group)).all()
    result.inserted = len(inserted)
    result.duplicates = len(rows) - len(inserted)
    if inserted:
        # One INSERT ... SELECT for all the event rows: a single parameter set instead of
        # another 500-row executemany.
        event_columns = ["order_id", "from_status", "to_status", "at_ms", "actor", "note"]
        event_values = core_select(
            col(Order.id), null(), literal(PAID), literal(now), literal("pipeline"), literal("")
        ).where(col(Order.id).in_([oid for oid, _, _, _ in inserted]))
        await conn.execute(insert(OrderEvent).from_select(event_columns, event_values))
        await post_sales(conn, [oid for oid, _, _, _ in inserted], now)
        await attribute_to_creators(conn, [oid for oid, _, _, _ in inserted], now)
    shelf_orders = {p.hold_id: p for p in paid if p.lines}
    taken: dict[tuple[int, bool], int] = defaultdict(int)  # (SKU, from the shelf) -> units
    line_rows = []
    for order_id, sku_id, qty, hold_id in inserted:
        shelf_order = shelf_orders.get(hold_id)
        if shelf_order is None:
            taken[sku_id, False] += qty
            continue
        for number, line in enumerate(shelf_order.lines):
            taken[line.sku_id, True] += line.qty
            line_rows.append(
                {
                    "order_id": order_id,
                    "line": number,
                    "sku_id": line.sku_id,
                    "quantity": line.qty,
                    "unit_price": line.unit_price,
                    "discount": line.off,
                }
            )
    if line_rows:
        await conn.execute(insert(OrderLine), line_rows)
    for (sku_id, shelved), qty in sorted(taken.items()):  # sorted: a fixed lock order
        # A deal's units were allocated to it when it started, a shelf's were shelved when put
        # there; selling them takes them out of stock and out of that count.
        name = "shelved" if shelved else "allocated"
        counted = col(getattr(Sku, name))
        guarded = await conn.execute(
            update(Sku)
            .where(col(Sku.id) == sku_id, col(Sku.stock) >= qty, counted >= qty)
            .values({"stock": col(Sku.stock) - qty, name: counted - qty})
        )
        if guarded.rowcount != 1:
            # Unreachable through the API (stock never drops below the allocation); only a hand
            # edit of the database gets here. The order is paid and is kept; the shortfall is
            # counted (livecart_stock_shortfalls) and left for the seller to reconcile.
            result.stock_shortfalls += 1
    await session.commit()
    return result


async def lines_of(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, list[Line]]:
    """The lines of the shelf orders among ``order_ids`` (a deal's order has none)."""
    if not order_ids:
        return {}
    rows = await session.exec(
        select(OrderLine)
        .where(col(OrderLine.order_id).in_(order_ids))
        .order_by(col(OrderLine.order_id), col(OrderLine.line))
    )
    found: dict[int, list[Line]] = defaultdict(list)
    for row in rows.all():
        found[row.order_id].append(Line(row.sku_id, row.quantity, row.unit_price, row.discount))
    return dict(found)


async def line_rows(session: AsyncSession, order_id: int) -> list[OrderLine]:
    """The order's line rows, in line order (none for a deal's order)."""
    rows = await session.exec(
        select(OrderLine).where(col(OrderLine.order_id) == order_id).order_by(col(OrderLine.line))
    )
    return list(rows.all())


async def post_sales(conn: AsyncConnection, order_ids: list[int], now: int) -> None:
    """Each order's ``sale:`` transaction (checkout.ledger.sale), for the whole batch in one
    INSERT ... SELECT: provider +total, shop pending -total, and, when the fee is not zero,
    shop pending +fee, fees -fee."""
    fee = col(Order.total) * col(Order.fee_bps) // 10_000
    lines = [
        (0, Account.PROVIDER, col(Order.total), None),
        (1, Account.PENDING, -col(Order.total), None),
        (2, Account.PENDING, fee, fee > 0),
        (3, Account.FEES, -fee, fee > 0),
    ]
    selects = []
    for number, account, amount, only_if in lines:
        query = core_select(
            literal("sale:") + cast(col(Order.id), String),
            literal(number),
            literal(account.value),
            col(Order.shop_id),
            amount,
            col(Order.currency),
            literal(now),
            literal("order:") + cast(col(Order.id), String),
        ).where(col(Order.id).in_(order_ids), col(Order.total) > 0)
        if only_if is not None:
            query = query.where(only_if)
        selects.append(query)
    columns = ["txn", "line", "account", "shop_id", "amount", "currency", "created_ms", "reference"]
    await conn.execute(insert(LedgerEntry).from_select(columns, union_all(*selects)))


async def attribute_to_creators(conn: AsyncConnection, order_ids: list[int], now: int) -> None:
    """Each order of a creator's deal on another shop's product gets its attribution, from what
    the server wrote when the deal was made (``affiliate_deals``): nothing in a buyer's request
    names a creator, a plan or a rate. The base is what the buyer paid for the goods."""
    source = core_select(
        col(Order.id),
        col(AffiliateDeal.room_id),
        col(AffiliateDeal.creator_id),
        col(AffiliateDeal.plan_id),
        col(Order.shop_id),
        col(AffiliateDeal.rate_bp),
        col(Order.total),
        col(Order.currency),
        literal(now),
    ).where(col(Order.id).in_(order_ids), col(AffiliateDeal.deal_id) == col(Order.deal_id))
    columns = [
        "order_id",
        "room_id",
        "creator_id",
        "plan_id",
        "shop_id",
        "rate_bp",
        "base",
        "currency",
        "created_ms",
    ]
    await conn.execute(insert(AffiliateAttribution).from_select(columns, source))


async def transition(
    session: AsyncSession,
    order: Order,
    action: str,
    actor: str,
    note: str = "",
    *,
    carrier: str = "",
    tracking_number: str = "",
    deliver_within_ms: int = MoneyTerms.deliver_within_ms,
    confirm_first: bool = False,
) -> Order:
    """Move ``order`` by ``action``: a guarded UPDATE plus its event row, in one transaction.
    Shipping records ``carrier`` and ``tracking_number``, when it shipped and when delivery is
    expected (``deliver_within_ms`` later: callers pass ``MoneyTerms.deliver_within_ms``, from
    ``LIVECART_DELIVERY_DAYS``) in the same UPDATE; delivering records when it was delivered.

    ``confirm_first``: shipping a paid order confirms it on the way, in the same UPDATE, with an
    event row for each move (the seller center ships in one step)."""
    current = OrderStatus(order.status)
    path = [current]
    if confirm_first and action == "ship" and current is OrderStatus.PAID:
        path.append(next_status(current, "confirm"))
    target = next_status(path[-1], action)
    path.append(target)
    extra = shipment_fields(target, carrier, tracking_number)
    now = now_ms()
    stamps = deadlines.moment_fields(target, now, deliver_within_ms)
    conn = await session.connection()
    order_id = order.id  # read before a rollback expires the row
    guards = [col(Order.id) == order_id, col(Order.status) == current.value]
    if target is OrderStatus.SHIPPED:
        # Not while the buyer asks to cancel. The row is locked first (PostgreSQL; SQLite
        # serializes writers), as return_store.create locks it, so the check sees a request
        # committed before we got the row, and a request made after sees the order shipped.
        await conn.execute(core_select(col(Order.id)).where(guards[0]).with_for_update())
        guards.append(~cancel_requested(order_id))
    moved = await conn.execute(
        update(Order).where(*guards).values(status=target.value, updated_ms=now, **extra, **stamps)
    )
    if moved.rowcount != 1:
        # Someone else moved the order between our read and our write: never record a move
        # that did not happen, even if the action would be legal from the new state.
        await session.rollback()
        if target is OrderStatus.SHIPPED:
            await _refuse_if_cancel_requested(session, order_id)
        await session.refresh(order)
        raise Conflict(
            f"The order changed to {order.status} while you acted; look again and retry.",
            code=CheckoutErrorCode.ORDER_CHANGED,
            status=order.status,
        )
    assert order.id is not None
    if target is OrderStatus.DELIVERED:
        await commissions.follow(conn, order.id, commissions.earned_name(order.id), now)
    for source, reached in itertools.pairwise(path):
        session.add(
            OrderEvent(
                order_id=order.id,
                from_status=source.value,
                to_status=reached.value,
                at_ms=now,
                actor=actor,
                note=note,
            )
        )
    await session.commit()
    await session.refresh(order)
    return order


def cancel_requested(order_id: Any) -> Any:
    """SQL: the order's buyer has an open request to cancel it."""
    return exists().where(
        col(ReturnRequest.order_id) == order_id,
        col(ReturnRequest.kind) == RequestKind.CANCEL.value,
        col(ReturnRequest.status).in_([s.value for s in OPEN_REQUESTS]),
    )


async def _refuse_if_cancel_requested(session: AsyncSession, order_id: int | None) -> None:
    found = await (await session.connection()).execute(core_select(cancel_requested(order_id)))
    if found.scalar():
        raise Conflict(
            "The buyer asked to cancel this order: answer their request before shipping.",
            code=CheckoutErrorCode.CANCEL_REQUESTED,
            order_id=order_id,
        )


async def move_buyer(session: AsyncSession, from_buyer: str, to_buyer: str) -> int:
    """A guest's orders and their return requests become an account's (decision 0041), in one
    transaction; how many orders moved. An order the pipeline writes for the guest after this
    stays the guest's until the next sign-in from that session."""
    moved = await session.exec(
        update(Order).where(col(Order.buyer_id) == from_buyer).values(buyer_id=to_buyer)
    )
    await session.exec(
        update(ReturnRequest)
        .where(col(ReturnRequest.buyer_id) == from_buyer)
        .values(buyer_id=to_buyer)
    )
    await session.commit()
    return int(moved.rowcount or 0)


async def orders_of_buyer(session: AsyncSession, buyer_id: str) -> Sequence[Order]:
    query = select(Order).where(Order.buyer_id == buyer_id).order_by(col(Order.id).desc())
    return (await session.exec(query)).all()


class OrderSort(enum.StrEnum):
    """How a seller's order list is ordered."""

    NEWEST = "newest"  # the newest order first
    SHIP_BY = "ship_by"  # the most urgent first: the earliest ship-by time, orders without last


def _sorted(query: SelectOfScalar[Order], sort: OrderSort) -> SelectOfScalar[Order]:
    if sort is OrderSort.SHIP_BY:
        # Portable NULLS LAST: false (0) sorts before true (1).
        ship_by = col(Order.ship_by_ms)
        return query.order_by(ship_by.is_(None), ship_by, col(Order.id))
    return query.order_by(col(Order.id).desc())


async def orders_of_shops(
    session: AsyncSession,
    shop_ids: Sequence[int],
    status: str | None = None,
    sort: OrderSort = OrderSort.NEWEST,
) -> Sequence[Order]:
    query = select(Order).where(col(Order.shop_id).in_(shop_ids))
    if status is not None:
        query = query.where(Order.status == status)
    return (await session.exec(_sorted(query, sort).limit(1000))).all()


async def orders_of_shops_in(
    session: AsyncSession,
    shop_ids: Sequence[int],
    statuses: Sequence[str],
    limit: int = 200,
    sort: OrderSort = OrderSort.NEWEST,
) -> Sequence[Order]:
    """The shops' first ``limit`` orders by ``sort`` in any of ``statuses`` (all when empty)."""
    query = select(Order).where(col(Order.shop_id).in_(shop_ids))
    if statuses:
        query = query.where(col(Order.status).in_(statuses))
    return (await session.exec(_sorted(query, sort).limit(limit))).all()


def _closed_ms(order_id: Any) -> Any:
    """When the order was cancelled or refunded (its first such event), as SQL: the
    ``closed_ms`` of ``checkout.deadlines``."""
    closed = [s.value for s in deadlines.CLOSED_UNSHIPPED]
    return (
        core_select(func.min(col(OrderEvent.at_ms)))
        .where(col(OrderEvent.order_id) == order_id, col(OrderEvent.to_status).in_(closed))
        .scalar_subquery()
    )


async def closed_unshipped(session: AsyncSession, orders: Sequence[Order]) -> dict[int, int]:
    """For the orders cancelled or refunded before they shipped, when that happened (what
    ``deadlines.is_late`` needs of them); one query, none when there are no such orders."""
    ids = [
        o.id
        for o in orders
        if o.id is not None and o.shipped_ms is None and o.status in deadlines.CLOSED_UNSHIPPED
    ]
    if not ids:
        return {}
    closed = [s.value for s in deadlines.CLOSED_UNSHIPPED]
    query = (
        core_select(col(OrderEvent.order_id), func.min(col(OrderEvent.at_ms)))
        .where(col(OrderEvent.order_id).in_(ids), col(OrderEvent.to_status).in_(closed))
        .group_by(col(OrderEvent.order_id))
    )
    rows = (await (await session.connection()).execute(query)).all()
    return {int(order_id): int(at_ms) for order_id, at_ms in rows}


async def dispatch_record(
    session: AsyncSession, shop_ids: Sequence[int], now: int
) -> deadlines.DispatchRecord:
    """The shops' late-dispatch count (``checkout.deadlines``): the orders whose ship-by time
    is in the 30 days up to ``now``, and how many of them stopped waiting to be shipped after
    it (or still wait), in one query."""
    start, end = deadlines.due_window(now)
    waiting = [s.value for s in deadlines.TO_SHIP]
    closed = [s.value for s in deadlines.CLOSED_UNSHIPPED]
    # deadlines.stopped_waiting_ms in SQL: when it shipped, else now while it waits, else when
    # it was cancelled or refunded; null (never late) otherwise.
    stopped = func.coalesce(
        col(Order.shipped_ms),
        case(
            (col(Order.status).in_(waiting), literal(now)),
            (col(Order.status).in_(closed), _closed_ms(col(Order.id))),
            else_=null(),
        ),
    )
    late = case((stopped > col(Order.ship_by_ms), 1), else_=0)
    query = core_select(func.count(), func.coalesce(func.sum(late), 0)).where(
        col(Order.shop_id).in_(shop_ids),
        col(Order.ship_by_ms) >= start,
        col(Order.ship_by_ms) <= end,
    )
    due, late_count = (await (await session.connection()).execute(query)).one()
    return deadlines.DispatchRecord(due=int(due), late=int(late_count))


async def count_by_status(session: AsyncSession, shop_ids: Sequence[int]) -> dict[str, int]:
    query = (
        core_select(col(Order.status), func.count())
        .where(col(Order.shop_id).in_(shop_ids))
        .group_by(col(Order.status))
    )
    return {
        status: int(n) for status, n in (await (await session.connection()).execute(query)).all()
    }


async def orders_since(session: AsyncSession, shop_ids: Sequence[int], since_ms: int) -> int:
    """How many orders were paid since ``since_ms`` in the shops, whatever their currency (the
    money is the ledger's, per currency: ``finance_store.net_sales_since``)."""
    query = core_select(func.count()).where(
        col(Order.shop_id).in_(shop_ids), col(Order.paid_ms) >= since_ms
    )
    return int((await (await session.connection()).execute(query)).scalar_one())


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
