"""A room's live-selling figures for its creator: viewers now and at peak, units held, and the
orders, units, GMV (gross, and net of refunds; per currency, decision 0053) and conversion it
made. Holds come from Redis (they are only there); sales come from SQL, the record of truth,
so the figures never count a sale the pipeline has not written (it runs well under a second
behind)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import distinct, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Deal
from checkout.holds import HoldStore
from checkout.models import Order
from kernel.clock import now_ms
from live.models import LiveRoom
from live.room_sales import CurrencySales, by_currency, leading, sales_select
from live.room_states import RoomStatus
from live.store import RoomStore


@dataclass(frozen=True)
class RoomFigures:
    viewers: int
    peak_viewers: int
    held: int  # units in holds still held or being paid for, across the room's deals
    orders: int  # every paid order, whatever its currency
    units_sold: int
    gmv: int  # gross, minor units of ``currency``: the totals of every paid order in it
    net_gmv: int  # net: less what was given back of them (``orders.refunded``: refunds,
    # cancellations, disputed amounts)
    currency: str  # the leading currency (room_sales.leading)
    sales: list[CurrencySales]  # every currency's, by its code
    buyers: int
    conversion: float  # buyers / peak viewers, 0..1

    def json(self) -> dict[str, Any]:
        return asdict(self)


async def sales_of_room(session: AsyncSession, room_id: int) -> list[CurrencySales]:
    """The sales of every order from the room's deals, per currency. Net is read from
    ``orders.refunded``, which a refund raises in the same transaction as its ledger entries
    and a refund the provider refused lowers again (decision 0027), so it is what the buyers
    kept paying."""
    query = sales_select(col(Order.currency)).where(col(Deal.room_id) == room_id)
    return await by_currency(await session.connection(), query)


async def buyers_of_room(session: AsyncSession, room_id: int) -> int:
    query = (
        select(func.count(distinct(col(Order.buyer_id))))
        .join(Deal, col(Deal.id) == col(Order.deal_id))
        .where(col(Deal.room_id) == room_id)
    )
    return int((await (await session.connection()).execute(query)).scalar_one())


async def room_figures(
    session: AsyncSession, store: RoomStore, holds: HoldStore, row: LiveRoom
) -> RoomFigures:
    assert row.id is not None
    snap = await store.read(row.id)
    held = 0
    if snap is not None:
        for deal in snap.room["deals"]:
            state = await holds.snapshot(deal["deal_id"])
            held += state.held if state is not None else 0
    viewers = await store.viewers_now(row.id, now_ms()) if row.status == RoomStatus.LIVE else 0
    peak = max(row.peak_viewers, await store.peak_viewers(row.id), viewers)
    sales = await sales_of_room(session, row.id)
    lead = leading(sales)
    buyers = await buyers_of_room(session, row.id)
    return RoomFigures(
        viewers=viewers,
        peak_viewers=peak,
        held=held,
        orders=sum(s.orders for s in sales),
        units_sold=sum(s.units for s in sales),
        gmv=lead.gmv,
        net_gmv=lead.net_gmv,
        currency=lead.currency,
        sales=sales,
        buyers=buyers,
        conversion=round(min(1.0, buyers / peak), 4) if peak else 0.0,
    )
