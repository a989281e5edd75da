"""What the seller center's affiliate sections show (decision 0046), each only to a role that
may see it: plans with the catalog duty, commission figures with money, offers with live; the
creator marketplace to every member."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import affiliates
from catalog.models import Product, Seller, Shop
from checkout import commissions
from live import affiliate_reports
from people.roles import Duty


async def affiliates_view(
    session: AsyncSession, me: Seller, shop_ids: list[int], can: set[str]
) -> dict[str, Any]:
    """What the three sections show, each only to a role that may see it: plans with catalog,
    commission figures with money; the marketplace to every member."""
    assert me.id is not None
    view: dict[str, Any] = {"plans": [], "owed": [], "offers": [], "mine": [], "rooms": []}
    if Duty.CATALOG in can:
        plans = await affiliates.plans_of(session, me)
        items = await affiliates.products_of(session, [p.id or 0 for p in plans])
        view["plans"] = [(plan, items[plan.id or 0]) for plan in plans]
    if Duty.MONEY in can:
        owed = await commissions.totals(session, shop_ids=shop_ids)
        names = {c: await session.get(Seller, c) for c, _ in owed}
        view["owed"] = [
            (getattr(names[creator], "name", ""), row) for (creator, _), row in sorted(owed.items())
        ]
        view["mine"] = sorted(
            (await commissions.totals(session, creator_id=me.id)).values(),
            key=lambda t: t.currency,
        )
        view["rooms"] = await affiliate_reports.creator_rooms(session, me.id)
    if Duty.LIVE in can:
        seen: set[int] = set()
        for offer in await affiliates.offers_to(session, me):
            if offer.product_id in seen:
                continue
            seen.add(offer.product_id)
            product = await session.get(Product, offer.product_id)
            shop = await session.get(Shop, offer.shop_id)
            view["offers"].append((offer, product, shop))
    view["marketplace"] = await affiliate_reports.marketplace(session, limit=50)
    return view
