"""A flash deal's item in a cart (decision 0028, choice 3): so many units at the deal's price,
held at checkout by the deal's own reserve (``lc_reserve``, in the deal's slot), so its
per-buyer limit and the per-address caps apply exactly as to a tap on Buy. Each deal item
becomes a hold and an order of its own; the cart's checkout takes it first (deals by id,
then shelves by shop id) and gives every hold back if anything after it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select as core_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Deal, Product, Sku


@dataclass(frozen=True)
class DealLine:
    """A deal item as the buyer's cart shows it."""

    deal_id: int
    sku_id: int
    shop_id: int
    title: str
    variant: str
    image_url: str
    unit_price: int  # the deal's price
    currency: str
    qty: int
    per_buyer_limit: int
    status: str  # the deal's (catalog.deal_status): only a live one can be held
    ends_ms: int

    @property
    def total(self) -> int:
        return self.qty * self.unit_price

    def json(self) -> dict[str, Any]:
        return {
            "deal_id": self.deal_id,
            "sku_id": self.sku_id,
            "shop_id": self.shop_id,
            "title": self.title,
            "variant": self.variant,
            "image_url": self.image_url,
            "qty": self.qty,
            "unit_price": self.unit_price,
            "currency": self.currency,
            "total": self.total,
            "per_buyer_limit": self.per_buyer_limit,
            "status": self.status,
            "ends_ms": self.ends_ms,
        }


async def deal_lines(session: AsyncSession, deals: dict[int, int]) -> list[DealLine]:
    """The cart's deal items (deal id -> units) that still exist, in deal id order."""
    if not deals:
        return []
    query = (
        core_select(
            col(Deal.id),
            col(Deal.sku_id),
            col(Deal.shop_id),
            col(Product.title),
            col(Sku.variant),
            col(Sku.image_url),
            col(Product.image_urls),
            col(Deal.deal_price),
            col(Deal.currency),
            col(Deal.per_buyer_limit),
            col(Deal.status),
            col(Deal.ends_ms),
        )
        .join(Sku, col(Sku.id) == col(Deal.sku_id))
        .join(Product, col(Product.id) == col(Sku.product_id))
        .where(col(Deal.id).in_(deals))
        .order_by(col(Deal.id))
    )
    rows = (await (await session.connection()).execute(query)).all()
    await session.commit()
    return [
        DealLine(
            deal_id=deal_id or 0,
            sku_id=sku_id,
            shop_id=shop_id,
            title=title,
            variant=variant,
            image_url=image or next(iter(images or []), ""),
            unit_price=price,
            currency=currency,
            qty=deals[deal_id or 0],
            per_buyer_limit=limit,
            status=status,
            ends_ms=ends_ms,
        )
        for (
            deal_id,
            sku_id,
            shop_id,
            title,
            variant,
            image,
            images,
            price,
            currency,
            limit,
            status,
            ends_ms,
        ) in rows
    ]
