"""What rooms' deals sold, read from the orders (the record of truth), per currency. One payment
is in one currency, but a room can sell SKUs priced in several, and money in two currencies
never adds up (decision 0053): a report gives each currency's sales, and draws its money per
minute or per day in one of them, the leading currency (the one most orders were paid in)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from catalog.models import Deal
from checkout.models import Order

NO_SALES_CURRENCY = "USD"  # what a report names before anything was sold


@dataclass(frozen=True)
class CurrencySales:
    currency: str
    orders: int
    units: int
    gmv: int  # gross, minor units: the orders' totals, refunded or not
    net_gmv: int  # less what was given back of them (``orders.refunded``)

    def json(self) -> dict[str, Any]:
        return asdict(self)


def sales_select(*keys: Any, money_in: str | None = None) -> Any:
    """``keys``, then orders, units, gross and net of the orders of rooms' deals (joined to
    ``Deal``; the caller adds its where and group by). With ``money_in`` the counts are of every
    order and the money of that currency's only."""
    total: Any = col(Order.total)
    kept: Any = col(Order.total) - col(Order.refunded)
    if money_in is not None:
        total = case((col(Order.currency) == money_in, total), else_=0)
        kept = case((col(Order.currency) == money_in, kept), else_=0)
    return select(
        *keys,
        func.count(col(Order.id)),
        func.coalesce(func.sum(col(Order.quantity)), 0),
        func.coalesce(func.sum(total), 0),
        func.coalesce(func.sum(kept), 0),
    ).join(Deal, col(Deal.id) == col(Order.deal_id))


async def by_currency(conn: AsyncConnection, query: Any) -> list[CurrencySales]:
    """``query``: a ``sales_select(Order.currency)`` with its where; grouped here."""
    rows = await conn.execute(query.group_by(col(Order.currency)))
    return sorted(
        (CurrencySales(str(row[0]), *(int(v) for v in row[1:])) for row in rows),
        key=lambda sales: sales.currency,
    )


def leading(sales: Sequence[CurrencySales]) -> CurrencySales:
    """The currency most orders were paid in; of two with as many, the first by its code (not
    the larger gross: minor units of two currencies do not compare), so a report names the
    same one each time it is read."""
    if not sales:
        return CurrencySales(NO_SALES_CURRENCY, 0, 0, 0, 0)
    return min(sales, key=lambda s: (-s.orders, s.currency))
