"""A room's analytics in SQL (decision 0044): its minutes written from Redis once it ended, and
its sales per minute read from the orders of its deals, the record of truth (refunds lower an
order's ``refunded``, so net stays true after the room is over)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Deal
from checkout.models import Order
from kernel.clock import now_ms
from kernel.db import Database
from live import figures
from live.analytics import FLUSH_S, MINUTE_MS, Minute, RoomAnalytics, Tally, rates
from live.models import LiveRoom, RoomMinute
from live.room_sales import by_currency, leading, sales_select

log = logging.getLogger("livecart.analytics")
DAY_MS = 24 * 3600 * 1000
STORED = ("viewers", "unique_viewers", *(t.value for t in Tally))
SALES = ("orders", "units", "gmv", "net_gmv")


async def archive(session: AsyncSession, analytics: RoomAnalytics, room_id: int) -> int:
    """Write the room's minutes from Redis over what SQL has, and its unique viewers; returns
    how many minutes. Each row is written whole, so a rerun (a crash before the work list
    forgot the room, two nodes at once) writes the same numbers again."""
    if await session.get(LiveRoom, room_id) is None:
        return 0  # a room of another database on the same Redis: nothing of ours to write
    minutes, unique = await analytics.minutes(room_id)
    conn = await session.connection()
    dialect = conn.dialect.name
    for minute in minutes:
        values = {name: getattr(minute, name) for name in STORED}
        insert: Any = (
            postgresql.insert(RoomMinute) if dialect == "postgresql" else sqlite.insert(RoomMinute)
        )
        await conn.execute(
            insert.values(
                room_id=room_id, minute_ms=minute.minute_ms, **values
            ).on_conflict_do_update(index_elements=["room_id", "minute_ms"], set_=values)
        )
    await conn.execute(
        update(LiveRoom).where(col(LiveRoom.id) == room_id).values(unique_viewers=unique)
    )
    await session.commit()
    return len(minutes)


async def stored_minutes(conn: AsyncConnection, room_id: int) -> list[Minute]:
    rows = await conn.execute(
        select(RoomMinute)
        .where(col(RoomMinute.room_id) == room_id)
        .order_by(col(RoomMinute.minute_ms))
    )
    return [
        Minute(row.minute_ms, **{name: getattr(row, name) for name in STORED}) for row in rows.all()
    ]


def _bucketed(bucket_ms: int, money_in: str) -> Any:
    """Orders and units of every currency, money of ``money_in`` only, per bucket of paid time."""
    paid = col(Order.paid_ms)
    return sales_select((paid - paid % bucket_ms).label("bucket"), money_in=money_in)


async def sales_by_minute(
    conn: AsyncConnection, room_id: int, money_in: str
) -> dict[int, tuple[int, ...]]:
    """Per minute the orders of the room's deals were paid in: orders, units, GMV gross and net
    in ``money_in``."""
    query = _bucketed(MINUTE_MS, money_in).where(col(Deal.room_id) == room_id).group_by("bucket")
    return {int(row[0]): tuple(int(v) for v in row[1:]) for row in await conn.execute(query)}


def with_sales(minutes: Iterable[Minute], sales: dict[int, tuple[int, ...]]) -> list[Minute]:
    """The minutes with their sales laid in; a minute with sales only (paid after the room's
    counts stopped, within the hold's pay window) becomes a minute of its own."""
    by_start = {m.minute_ms: m for m in minutes}
    for start, (orders, units, gmv, net_gmv) in sales.items():
        minute = by_start.setdefault(start, Minute(start))
        minute.orders, minute.units, minute.gmv, minute.net_gmv = orders, units, gmv, net_gmv
    return [by_start[start] for start in sorted(by_start)]


async def daily(conn: AsyncConnection, shop_id: int, days: int, now: int) -> dict[str, Any]:
    """The shop's rooms per UTC day for the last ``days`` days (today included), oldest first:
    the archived minutes' counts summed (viewers: the most at once that day), and the sales of
    its rooms' deals paid that day, their money in the period's leading currency; with every
    currency's sales over the period. Rooms still live are not in it until they end."""
    since = now - now % DAY_MS - (days - 1) * DAY_MS
    rows: dict[int, dict[str, Any]] = {
        since + n * DAY_MS: {name: 0 for name in (*STORED, *SALES)} for n in range(days)
    }
    start = col(RoomMinute.minute_ms)
    day = (start - start % DAY_MS).label("day")
    counts = (
        select(
            day,
            func.max(col(RoomMinute.viewers)),
            *[func.sum(getattr(RoomMinute, name)) for name in STORED[1:]],
        )
        .join(LiveRoom, col(LiveRoom.id) == col(RoomMinute.room_id))
        .where(col(LiveRoom.shop_id) == shop_id, start >= since)
        .group_by("day")
    )
    # A day past today (a node's clock ahead of this one's) is left out, not an error.
    for found in await conn.execute(counts):
        if int(found[0]) in rows:
            rows[int(found[0])].update(zip(STORED, (int(v or 0) for v in found[1:]), strict=True))
    shops_rooms = (col(LiveRoom.shop_id) == shop_id, col(Order.paid_ms) >= since)
    currencies = await by_currency(
        conn,
        sales_select(col(Order.currency))
        .join(LiveRoom, col(LiveRoom.id) == col(Deal.room_id))
        .where(*shops_rooms),
    )
    lead = leading(currencies).currency
    sales = (
        _bucketed(DAY_MS, lead)
        .join(LiveRoom, col(LiveRoom.id) == col(Deal.room_id))
        .where(*shops_rooms)
        .group_by("bucket")
    )
    for found in await conn.execute(sales):
        if int(found[0]) in rows:
            rows[int(found[0])].update(zip(SALES, (int(v) for v in found[1:]), strict=True))
    return {
        "currency": lead,
        "sales": [c.json() for c in currencies],
        "days": [{"day_ms": at, **rows[at]} for at in sorted(rows)],
    }


def totals(minutes: Sequence[Minute], unique_viewers: int) -> dict[str, Any]:
    """The room's whole run: sums, the most viewers at once, its unique viewers."""
    summed = {name: sum(getattr(m, name) for m in minutes) for name in (*STORED[2:], *SALES)}
    return {
        "peak_viewers": max((m.viewers for m in minutes), default=0),
        "unique_viewers": unique_viewers,
        **summed,
    }


async def room_report(session: AsyncSession, analytics: RoomAnalytics, row: LiveRoom) -> Any:
    """The room's minutes (with sales), totals and rates: from Redis until its minutes are
    written to SQL after it ended (``source`` says which)."""
    assert row.id is not None
    conn = await session.connection()
    if row.unique_viewers is None:
        minutes, unique = await analytics.minutes(row.id)
        source = "redis"
    else:
        minutes, unique = await stored_minutes(conn, row.id), row.unique_viewers
        source = "sql"
    currencies = await figures.sales_of_room(session, row.id)
    lead = leading(currencies).currency
    minutes = with_sales(minutes, await sales_by_minute(conn, row.id, lead))
    summed = totals(minutes, unique)
    return {
        "room_id": row.id,
        "status": row.status,
        "source": source,
        "minutes": [m.json() for m in minutes],
        "totals": {
            **summed,
            **rates(summed["clicks"], summed["impressions"], summed["orders"], unique),
            "currency": lead,
            "sales": [c.json() for c in currencies],
        },
    }


async def archive_due(db: Database, analytics: RoomAnalytics, now: int) -> None:
    """Write the ended rooms that are due; a room leaves the work list only once written."""
    for room_id in await analytics.due(now):
        try:
            async with db.session() as session:
                await archive(session, analytics, room_id)
        except Exception:  # one room's trouble must not hold up the others'
            log.exception("analytics of room %s not written to SQL; will retry", room_id)
            continue
        await analytics.archived(room_id)


async def run(db: Database, analytics: RoomAnalytics, stop: asyncio.Event) -> None:
    """The node's analytics loop: flush its counts, write ended rooms to SQL; a last flush on
    the way out."""
    while not stop.is_set():
        try:
            await analytics.flush()
            await archive_due(db, analytics, now_ms())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("analytics flush or archive failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FLUSH_S)
    await analytics.flush()
