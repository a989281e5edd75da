"""Promotions (decision 0028): product discounts (a percentage off some products' list prices)
and bundles (any N units of some products for a price), for a period. Their terms are rows in
SQL; the running and coming ones are pushed to the shop's shelf as one encoded text, which every
checkout prices with (``checkout/pricing.py`` applies them, before the voucher) and the hold
checks is still the shelf's. Ending one early is setting its end to now."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service as catalog
from checkout import pricing
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Promotion
from kernel.clock import now_ms
from kernel.errors import Invalid, NotFound

DISCOUNT, BUNDLE = "discount", "bundle"
MAX_BUNDLE = 10  # units in one bundle
MAX_PRODUCTS = 200


@dataclass(frozen=True)
class PromotionTerms:
    kind: str
    products: tuple[int, ...]
    starts_ms: int
    ends_ms: int
    bps: int = 0
    size: int = 0
    price: int = 0
    currency: str = ""


def check_terms(terms: PromotionTerms, now: int) -> None:
    """Every rule a promotion's terms keep, or Invalid naming the first broken one."""
    discount, bundle = terms.kind == DISCOUNT, terms.kind == BUNDLE
    problems = [
        (not discount and not bundle, "kind", "discount or bundle"),
        (not 1 <= len(terms.products) <= MAX_PRODUCTS, "products", f"1 to {MAX_PRODUCTS} ids"),
        (discount and not 1 <= terms.bps < pricing.BPS, "bps", "1 to 9999 (99.99 %)"),
        (bundle and not 2 <= terms.size <= MAX_BUNDLE, "size", f"2 to {MAX_BUNDLE} units"),
        (bundle and terms.price < 1, "price", "at least 1"),
        (bundle and len(terms.currency) != 3, "currency", "a currency code"),
        (terms.ends_ms <= terms.starts_ms, "ends_ms", "after starts_ms"),
        (terms.ends_ms <= now, "ends_ms", "in the future"),
    ]
    for broken, field, rule in problems:
        if broken:
            raise Invalid(
                f"The promotion's {field} must be {rule}.",
                code=CheckoutErrorCode.INVALID_PROMOTION,
                field=field,
            )


async def create(session: AsyncSession, shop_id: int, terms: PromotionTerms) -> Promotion:
    """Write the promotion (the caller checked the shop is the seller's)."""
    check_terms(terms, now_ms())
    missing = await catalog.foreign_products(session, shop_id, terms.products)
    if missing:
        raise Invalid(
            "Some of those products are not this shop's.",
            code=CheckoutErrorCode.INVALID_PROMOTION,
            field="products",
            product_ids=missing,
        )
    row = Promotion(
        shop_id=shop_id,
        kind=terms.kind,
        products=sorted(set(terms.products)),
        bps=terms.bps if terms.kind == DISCOUNT else 0,
        size=terms.size if terms.kind == BUNDLE else 0,
        price=terms.price if terms.kind == BUNDLE else 0,
        currency=terms.currency if terms.kind == BUNDLE else "",
        starts_ms=terms.starts_ms,
        ends_ms=terms.ends_ms,
        created_ms=now_ms(),
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def end(session: AsyncSession, shop_id: int, promotion_id: int) -> Promotion:
    """End the shop's promotion now (one that has ended stays as it was)."""
    row = await session.get(Promotion, promotion_id)
    if row is None or row.shop_id != shop_id:
        raise NotFound(
            "No such promotion in this shop.",
            code=CheckoutErrorCode.PROMOTION_NOT_FOUND,
            promotion_id=promotion_id,
        )
    row.ends_ms = min(row.ends_ms, now_ms())
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def of_shop(session: AsyncSession, shop_id: int) -> Sequence[Promotion]:
    query = select(Promotion).where(col(Promotion.shop_id) == shop_id).order_by(col(Promotion.id))
    return (await session.exec(query)).all()


async def encoded_for(session: AsyncSession, shop_id: int, now: int) -> str:
    """The shop's promotions not yet ended, as its shelf keeps them: ``[]`` for none."""
    rows = await session.exec(
        select(Promotion)
        .where(col(Promotion.shop_id) == shop_id, col(Promotion.ends_ms) > now)
        .order_by(col(Promotion.id))
    )
    return encode(rows.all())


def encode(rows: Sequence[Promotion]) -> str:
    return orjson.dumps(
        [
            [r.id, r.kind, r.products, r.bps, r.size, r.price, r.currency, r.starts_ms, r.ends_ms]
            for r in rows
        ]
    ).decode()


def running(
    encoded: str, now: int, currency: str
) -> tuple[list[pricing.ProductDiscount], list[pricing.Bundle]]:
    """What pricing applies now from a shelf's promotions: per product its best running
    discount, and the running bundles priced in ``currency``, in the order they were made."""
    best: dict[int, int] = {}
    bundles = []
    for _, kind, products, bps, size, price, in_currency, starts, ends in _decoded(encoded):
        if not starts <= now < ends:
            continue
        if kind == DISCOUNT:
            for product in products:
                best[product] = max(best.get(product, 0), bps)
        elif in_currency == currency:
            bundles.append(pricing.Bundle(frozenset(products), size, price))
    discounts = [pricing.ProductDiscount(product, bps) for product, bps in sorted(best.items())]
    return discounts, bundles


@dataclass(frozen=True)
class Shown:
    """A product's running promotions as the storefront and the bag show them: its best
    discount (basis points, 0 for none) and its bundles, (size, price, currency) each."""

    bps: int = 0
    bundles: tuple[tuple[int, int, str], ...] = ()


def shown(encoded: str, now: int) -> dict[int, Shown]:
    """Per product with any running now, from the shelf's text (``encoded_for``)."""
    best: dict[int, int] = {}
    bundles: dict[int, list[tuple[int, int, str]]] = {}
    for _, kind, products, bps, size, price, currency, starts, ends in _decoded(encoded):
        if not starts <= now < ends:
            continue
        for product in products:
            if kind == DISCOUNT:
                best[product] = max(best.get(product, 0), bps)
            else:
                bundles.setdefault(product, []).append((size, price, currency))
    return {
        product: Shown(best.get(product, 0), tuple(bundles.get(product, ())))
        for product in best.keys() | bundles.keys()
    }


@functools.lru_cache(maxsize=256)  # a shop's text changes only with its promotions
def _decoded(encoded: str) -> tuple[tuple[Any, ...], ...]:
    """The shelf's text as rows, parsed once per text: this runs on every checkout."""
    if not encoded:
        return ()
    return tuple(tuple(row) for row in orjson.loads(encoded))


def promotion_json(row: Promotion) -> dict[str, Any]:
    return {
        "id": row.id,
        "shop_id": row.shop_id,
        "kind": row.kind,
        "products": row.products,
        "bps": row.bps if row.kind == DISCOUNT else None,
        "size": row.size if row.kind == BUNDLE else None,
        "price": row.price if row.kind == BUNDLE else None,
        "currency": row.currency or None,
        "starts_ms": row.starts_ms,
        "ends_ms": row.ends_ms,
    }
