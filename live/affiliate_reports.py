"""Creators' rooms and sales, as the creator dashboard and the creator marketplace show them
(decision 0046). A room's GMV is what its deals' buyers paid and kept, per currency; a creator's
followers are the accounts following the creator's seller (decision 0045)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Deal, Seller
from checkout.models import Order
from checkout.orders import OrderStatus
from live.models import Follow, LiveRoom

# Orders that were paid for (a cancelled or refunded one keeps only what was not given back).
PAID_FOR = [s.value for s in OrderStatus if s is not OrderStatus.UNPAID]


def _kept() -> Any:
    return func.sum(col(Order.total) - col(Order.refunded))


async def creator_rooms(session: AsyncSession, creator_id: int) -> list[dict[str, Any]]:
    """The creator's rooms, newest first, each with its orders and GMV per currency."""
    conn = await session.connection()
    rooms: list[Any] = list(
        await conn.execute(
            core_select(col(LiveRoom.id), col(LiveRoom.title), col(LiveRoom.status))
            .where(col(LiveRoom.seller_id) == creator_id)
            .order_by(col(LiveRoom.id).desc())
            .limit(200)
        )
    )
    sales = await conn.execute(
        core_select(col(Deal.room_id), col(Order.currency), func.count(), _kept())
        .join(Order, col(Order.deal_id) == col(Deal.id))
        .where(
            col(Deal.room_id).in_([room_id for room_id, _, _ in rooms]),
            col(Order.status).in_(PAID_FOR),
        )
        .group_by(col(Deal.room_id), col(Order.currency))
    )
    by_room: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for room_id, currency, orders, kept in sales.all():
        by_room[room_id].append({"currency": currency, "orders": orders, "gmv": int(kept or 0)})
    return [
        {"room_id": room_id, "title": title, "status": status, "sales": by_room[room_id]}
        for room_id, title, status in rooms
    ]


async def marketplace(session: AsyncSession, limit: int = 100) -> list[dict[str, Any]]:
    """Every seller who has hosted a room, with the GMV of all their rooms per currency, the
    biggest sellers first (by number of orders, comparable across currencies)."""
    conn = await session.connection()
    sales = (
        await conn.execute(
            core_select(col(LiveRoom.seller_id), col(Order.currency), func.count(), _kept())
            .join(Deal, col(Deal.room_id) == col(LiveRoom.id))
            .join(Order, col(Order.deal_id) == col(Deal.id))
            .where(col(Order.status).in_(PAID_FOR))
            .group_by(col(LiveRoom.seller_id), col(Order.currency))
        )
    ).all()
    hosts: list[Any] = list(
        await conn.execute(
            core_select(col(Seller.id), col(Seller.name), func.count(col(LiveRoom.id)))
            .join(LiveRoom, col(LiveRoom.seller_id) == col(Seller.id))
            .where(col(LiveRoom.started_ms).is_not(None))
            .group_by(col(Seller.id), col(Seller.name))
        )
    )
    gmv: dict[int, list[dict[str, Any]]] = defaultdict(list)
    orders: dict[int, int] = defaultdict(int)
    for seller_id, currency, n, kept in sales:
        gmv[seller_id].append({"currency": currency, "orders": n, "gmv": int(kept or 0)})
        orders[seller_id] += n
    ranked = sorted(hosts, key=lambda host: (-orders[host[0]], host[0]))[:limit]
    followers = dict(
        list(
            await conn.execute(
                core_select(col(Follow.seller_id), func.count())
                .where(col(Follow.seller_id).in_([host[0] for host in ranked]))
                .group_by(col(Follow.seller_id))
            )
        )
    )
    return [
        {
            "creator_id": seller_id,
            "name": name,
            "rooms": rooms,
            "followers": int(followers.get(seller_id, 0)),
            "sales": sorted(gmv[seller_id], key=lambda s: s["currency"]),
        }
        for seller_id, name, rooms in ranked
    ]
