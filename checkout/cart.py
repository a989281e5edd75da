"""Carts: what a buyer means to buy, shown priced from SQL, and held all or nothing at
checkout at the prices on the shop's shelf, which SQL's are pushed to (decision 0028). A
checkout holds one shop's items in one shelf function call; a cart with several shops' products
is checked out one shop at a time (each its own payment, for now)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.error_codes import CatalogErrorCode
from catalog.models import Product, Sku
from checkout.cart_store import CartStore
from checkout.error_codes import CheckoutErrorCode
from checkout.shelf import Refusal, ShelfHold, ShelfStore, Shortfall
from checkout.shelving import Shelving
from kernel.db import Database
from kernel.errors import Conflict, DomainError, Invalid, NotFound

MAX_LINES = 50  # distinct SKUs in one cart
MAX_UNITS = 99  # units of one SKU


@dataclass(frozen=True)
class CartLine:
    """A line as the buyer sees it: the SKU, its product, its price now."""

    sku_id: int
    product_id: int
    shop_id: int
    title: str
    variant: str
    image_url: str
    unit_price: int
    currency: str
    qty: int

    @property
    def total(self) -> int:
        return self.qty * self.unit_price

    def json(self) -> dict[str, Any]:
        return {
            "sku_id": self.sku_id,
            "product_id": self.product_id,
            "shop_id": self.shop_id,
            "title": self.title,
            "variant": self.variant,
            "image_url": self.image_url,
            "qty": self.qty,
            "unit_price": self.unit_price,
            "currency": self.currency,
            "total": self.total,
        }


def cart_json(lines: Sequence[CartLine]) -> dict[str, Any]:
    """The cart with a subtotal per shop and currency (what each checkout would charge)."""
    shops: dict[tuple[int, str], int] = {}
    for line in lines:
        key = (line.shop_id, line.currency)
        shops[key] = shops.get(key, 0) + line.total
    return {
        "lines": [line.json() for line in lines],
        "shops": [
            {"shop_id": shop_id, "currency": currency, "subtotal": subtotal}
            for (shop_id, currency), subtotal in sorted(shops.items())
        ],
    }


class Carts:
    def __init__(self, store: CartStore, shelving: Shelving) -> None:
        self.store = store
        self.shelving = shelving

    async def lines(self, session: AsyncSession, buyer: str) -> list[CartLine]:
        """The cart's lines whose SKUs are still for sale, in SKU order."""
        return await self._priced(session, await self.store.units(buyer))

    async def _priced(self, session: AsyncSession, units: dict[int, int]) -> list[CartLine]:
        if not units:
            return []
        # Columns, not ORM objects: this read is on every checkout's path.
        query = (
            core_select(
                col(Sku.id),
                col(Sku.product_id),
                col(Sku.shop_id),
                col(Product.title),
                col(Sku.variant),
                col(Sku.image_url),
                col(Product.image_urls),
                col(Sku.list_price),
                col(Sku.currency),
            )
            .join(Product, col(Product.id) == col(Sku.product_id))
            .where(col(Sku.id).in_(units), col(Product.archived_ms).is_(None))
            .order_by(col(Sku.id))
        )
        rows = (await (await session.connection()).execute(query)).all()
        return [
            CartLine(
                sku_id=sku_id or 0,
                product_id=product_id,
                shop_id=shop_id,
                title=title,
                variant=variant,
                image_url=image or next(iter(images or []), ""),
                unit_price=price,
                currency=currency,
                qty=units[sku_id or 0],
            )
            for sku_id, product_id, shop_id, title, variant, image, images, price, currency in rows
        ]

    async def put(self, session: AsyncSession, buyer: str, sku_id: int, qty: int) -> None:
        if not 0 <= qty <= MAX_UNITS:
            raise Invalid(
                f"The quantity must be a whole number from 0 to {MAX_UNITS}.",
                code=CatalogErrorCode.INVALID_QUANTITY,
            )
        if qty > 0:
            found = (
                await session.exec(
                    select(Sku.id)
                    .join(Product, col(Product.id) == col(Sku.product_id))
                    .where(col(Sku.id) == sku_id, col(Product.archived_ms).is_(None))
                )
            ).first()
            if found is None:
                raise NotFound(
                    "No such SKU on sale.", code=CatalogErrorCode.SKU_NOT_FOUND, sku_id=sku_id
                )
            units = await self.store.units(buyer)
            if sku_id not in units and len(units) >= MAX_LINES:
                raise Conflict(
                    f"A cart takes at most {MAX_LINES} different items.",
                    code=CheckoutErrorCode.CART_FULL,
                    limit=MAX_LINES,
                )
        await self.store.put(buyer, sku_id, qty)

    async def checkout(
        self,
        db: Database,
        buyer: str,
        *,
        request_id: str,
        shop_id: int | None,
        expected_total: int | None,
        items: dict[int, int] | None = None,
    ) -> ShelfHold:
        """Hold the cart's items of one shop, all or none, priced by the shop's shelf (no SQL
        on this path unless a SKU was never on a shelf). ``items`` (SKU -> units; "buy now")
        are held instead of the cart's. The total charged is the hold's; ``expected_total``
        (what the buyer was shown) lets a changed price refuse rather than surprise."""
        shelf = self.shelving.shelf
        if items and shop_id is not None:
            # Buy now, naming the shop: one Redis call when the shelf has the units (a SKU of
            # another shop has no terms on this shelf, and is refused as none left).
            answer = await shelf.hold(shop_id, buyer, request_id, items, expected_total)
            if not isinstance(answer, Refusal):
                return answer
        units = items or await self.store.units(buyer)
        if not units:
            raise Conflict("Nothing to check out.", code=CheckoutErrorCode.CART_EMPTY)
        shops = await shelf.shops_of(sorted(units))
        unknown = [sku for sku in units if sku not in shops]
        if unknown:  # never on a shelf: its terms come from SQL, once
            async with db.session() as session:
                await self.shelving.publish(session, unknown)
            shops = await shelf.shops_of(sorted(units))
        # A SKU that does not exist at all is an empty shelf's: held as 0 left, below.
        every = sorted({shops.get(sku, 0) for sku in units} - {0})
        if shop_id is None and len(every) > 1:
            raise Conflict(
                "The cart holds several shops' products: check out one shop at a time.",
                code=CheckoutErrorCode.CART_SPANS_SHOPS,
                shop_ids=every,
            )
        shop = shop_id if shop_id is not None else (every[0] if every else 0)
        mine = {sku: qty for sku, qty in units.items() if shops.get(sku, shop) == shop}
        if not mine:
            raise Conflict(
                "Nothing of this shop's to check out.", code=CheckoutErrorCode.CART_EMPTY
            )
        if shop == 0:  # no SKU named exists
            raise _short([Shortfall(sku, qty, 0) for sku, qty in sorted(mine.items())])
        answer = await shelf.hold(shop, buyer, request_id, mine, expected_total)
        if isinstance(answer, Refusal) and answer.word == "short":
            # The shelf holds what buyers asked for: put the SKUs' free units there, once.
            async with db.session() as session:
                await self.shelving.fill(session, [short.sku_id for short in answer.short])
            answer = await shelf.hold(shop, buyer, request_id, mine, expected_total)
        if isinstance(answer, Refusal):
            raise _refused(answer, expected_total, mine)
        return answer


def _refused(refusal: Refusal, expected_total: int | None, units: dict[int, int]) -> DomainError:
    if refusal.word == "short":
        return _short(refusal.short)
    if refusal.word == "off_sale":  # its product was archived, or the SKU deleted: none left
        return _short([Shortfall(sku, units.get(sku, 0), 0) for sku in refusal.off_sale])
    if refusal.word == "quote":
        return Conflict(
            "Prices changed since you looked: see the lines and the new total.",
            code=CheckoutErrorCode.QUOTE_CHANGED,
            total=refusal.total,
            expected_total=expected_total,
            lines=[line.json() for line in refusal.lines],
        )
    return Conflict(
        "One payment is in one currency: these items are priced in several.",
        code=CheckoutErrorCode.MIXED_CURRENCIES,
    )


async def for_sale(shelf: ShelfStore, skus: Sequence[Sku]) -> dict[int, int]:
    """Units of each SKU a buyer can take at list price now: its free units in SQL and those
    on its shop's shelf that nobody holds (one shelf call per shop)."""
    by_shop: dict[int, list[int]] = {}
    for sku in skus:
        by_shop.setdefault(sku.shop_id, []).append(sku.id or 0)
    shelved: dict[int, int] = {}
    for shop_id, ids in by_shop.items():
        for sku_id, counters in (await shelf.stock(shop_id, ids)).items():
            shelved[sku_id] = counters.available
    return {
        sku.id or 0: max(0, sku.stock - sku.allocated - sku.shelved) + shelved.get(sku.id or 0, 0)
        for sku in skus
    }


def _short(shortfalls: list[Shortfall]) -> Conflict:
    return Conflict(
        "Not enough left of some items; nothing was held.",
        code=CheckoutErrorCode.INSUFFICIENT_STOCK,
        lines=[
            {"sku_id": s.sku_id, "wanted": s.wanted, "available": s.available} for s in shortfalls
        ],
    )
