"""Carts: what a buyer means to buy, shown priced from SQL, and held all or nothing at
checkout at the prices on the shop's shelf, which SQL's are pushed to (decision 0028). A
checkout reads the shop's shelf once (prices, units, shipping rule), prices the lines with
``checkout/pricing.py`` and holds them in one shelf function call, which also redeems the
voucher; a cart with several shops' products is checked out one shop at a time (each its own
payment, for now)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.deal_status import DealStatus
from catalog.error_codes import CatalogErrorCode
from catalog.models import Deal, Product, Shop, Sku
from checkout import cart_deals, pricing, promotions, quoting, vouchers
from checkout.cart_store import CartStore
from checkout.error_codes import CheckoutErrorCode
from checkout.holds import Hold, HoldStore, ReserveRequest
from checkout.models import Voucher
from checkout.shelf import Refusal, ShelfHold, ShelfQuote, ShelfStore, Shortfall
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import Conflict, DomainError, Invalid, NotFound

log = logging.getLogger("livecart.cart")

MAX_LINES = 50  # distinct SKUs in one cart
MAX_UNITS = 99  # units of one SKU
ATTEMPTS = 5  # quote-and-hold rounds: four repairs at most, then the hold


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


def cart_json(
    lines: Sequence[CartLine],
    shops: Sequence[quoting.ShopQuote],
    deals: Sequence[cart_deals.DealLine] = (),
) -> dict[str, Any]:
    """The cart with each shop's part as its checkout would charge it (one currency each),
    and its deal items, each a hold and an order of its own at the deal's price."""
    return {
        "lines": [line.json() for line in lines],
        "shops": [q.json() for q in shops],
        "deals": [d.json() for d in deals],
    }


class DealReserver(Protocol):
    async def reserve(self, deal_id: int, request: ReserveRequest) -> Hold: ...


@dataclass(frozen=True)
class CartHold:
    """One hold of a cart's checkout as the buyer is answered: a shop's, or a deal item's."""

    body: dict[str, Any]
    total: int
    currency: str
    replayed: bool

    @classmethod
    def of_shelf(cls, hold: ShelfHold) -> CartHold:
        return cls(hold.json(), hold.total, hold.currency, hold.replayed)

    @classmethod
    def of_deal(cls, hold: Hold, line: cart_deals.DealLine) -> CartHold:
        total = hold.qty * line.unit_price
        held = {"sku_id": line.sku_id, "qty": hold.qty, "unit_price": line.unit_price}
        body = {
            **hold.json(),
            "deal_id": line.deal_id,
            "lines": [{**held, "discount": 0, "total": total}],
            "total": total,
            "currency": line.currency,
        }
        return cls(body, total, line.currency, hold.replayed)


class Carts:
    def __init__(
        self,
        store: CartStore,
        shelving: Shelving,
        holds: HoldStore,
        reserver: DealReserver,
    ) -> None:
        """``holds`` and ``reserver`` (the deals' batcher) check out a cart's deal items."""
        self.store = store
        self.shelving = shelving
        self.holds = holds
        self.reserver = reserver

    async def view(self, session: AsyncSession, buyer: str) -> dict[str, Any]:
        """The cart as GET /api/cart answers it (``cart_json``), from one read of its hash."""
        skus, deals = await self.store.contents(buyer)
        lines = await self._priced(session, skus)
        shops = await self.quotes(session, buyer, lines)
        return cart_json(lines, shops, await cart_deals.deal_lines(session, deals))

    async def put_deal(
        self, session: AsyncSession, buyer: str, deal_id: int, qty: int
    ) -> int | None:
        """A deal's item at the deal's price, up to its per-buyer limit (0 takes it out).
        Returns the live room the deal sells in, if any (for the room's analytics)."""
        if qty == 0:
            await self.store.put_deal(buyer, deal_id, 0)
            return None
        found = await cart_deals.deal_lines(session, {deal_id: qty})
        if not found:
            raise NotFound("No such deal.", code=CatalogErrorCode.DEAL_NOT_FOUND, deal_id=deal_id)
        (line,) = found
        lot = await session.get(Deal, deal_id)
        if lot is not None and lot.kind == "lot":
            raise Conflict(
                "This unit is sold by auction: bid for it.", code=CheckoutErrorCode.AUCTION_LOT
            )
        if line.status not in (DealStatus.SCHEDULED, DealStatus.LIVE):
            raise Conflict("The deal has ended.", code=CatalogErrorCode.DEAL_ENDED)
        if not 1 <= qty <= line.per_buyer_limit:
            raise Conflict(
                f"The deal sells at most {line.per_buyer_limit} units to one buyer.",
                code=CheckoutErrorCode.LIMIT_EXCEEDED,
                limit=line.per_buyer_limit,
            )
        skus, deals = await self.store.contents(buyer)
        if deal_id not in deals and len(skus) + len(deals) >= MAX_LINES:
            raise Conflict(
                f"A cart takes at most {MAX_LINES} different items.",
                code=CheckoutErrorCode.CART_FULL,
                limit=MAX_LINES,
            )
        await self.store.put_deal(buyer, deal_id, qty)
        return lot.room_id if lot is not None else None

    async def quotes(
        self, session: AsyncSession, buyer: str, lines: Sequence[CartLine]
    ) -> list[quoting.ShopQuote]:
        """Each shop's part of the cart (per currency) with its shipping fee and the best
        voucher the buyer can use, as SQL prices it now (a checkout prices from the shelf)."""
        parts: dict[tuple[int, str], list[pricing.Line]] = {}
        for line in lines:
            parts.setdefault((line.shop_id, line.currency), []).append(
                pricing.Line(line.sku_id, line.product_id, line.unit_price, line.qty)
            )
        if not parts:
            return []
        shop_ids = sorted({shop_id for shop_id, _ in parts})
        shops = {
            shop.id: shop
            for shop in (await session.exec(select(Shop).where(col(Shop.id).in_(shop_ids)))).all()
        }
        now = now_ms()
        offered = (
            await session.exec(
                select(Voucher).where(
                    col(Voucher.shop_id).in_(shop_ids),
                    col(Voucher.starts_ms) <= now,
                    col(Voucher.ends_ms) > now,
                )
            )
        ).all()
        quotes = []
        for (shop_id, currency), basket in sorted(parts.items()):
            shop = shops[shop_id]
            rule = quoting.shipping_rule(
                f"{shop.shipping_kind}:{shop.shipping_fee}:{shop.shipping_free_over}"
            )
            mine = [v for v in offered if v.shop_id == shop_id]
            claims = await self.shelving.shelf.usable(shop_id, buyer, [v.code for v in mine])
            candidates = [v for v in mine if quoting.usable(v, claims[v.code], now)]
            promoted = await promotions.encoded_for(session, shop_id, now)
            quotes.append(quoting.best(shop_id, basket, currency, rule, candidates, promoted))
        return quotes

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
        voucher: str | None = None,
        address: str = "",
    ) -> ShelfHold:
        """Hold the cart's items of one shop, all or none, priced from the shop's shelf by
        ``checkout/pricing.py`` with its shipping rule and the voucher named (redeemed by the
        hold). ``items`` (SKU -> units; "buy now") are held instead of the cart's. The total
        charged is the hold's; ``expected_total`` (what the buyer was shown) lets a changed
        total refuse rather than surprise."""
        units = items or await self.store.units(buyer)
        if not units:
            raise Conflict("Nothing to check out.", code=CheckoutErrorCode.CART_EMPTY)
        quoted = None
        if items and shop_id is not None:
            # Buy now, naming the shop (the bag's cards carry it): when the shelf has terms for
            # every item (read a moment ago, or now), they price the hold, and the SKU index is
            # not read.
            shelf, skus = self.shelving.shelf, sorted(units)
            quoted = shelf.recent_quote(shop_id, skus) or await shelf.quote(shop_id, skus, buyer)
        if quoted is not None and len(quoted.offers) == len(units):
            shop, mine = shop_id or 0, dict(units)
        else:
            quoted = None
            shop, mine = await self._shop_part(db, units, shop_id)
        terms = None
        if voucher is not None:
            async with db.session() as session:
                terms = await vouchers.get(session, shop, voucher)
        return await self._hold(
            db, shop, buyer, request_id, mine, expected_total, terms, quoted, address
        )

    async def checkout_every_shop(
        self,
        db: Database,
        buyer: str,
        *,
        request_id: str,
        expected_total: int | None,
        voucher: str | None = None,
        vouchers: dict[int, str] | None = None,
        address: str = "",
        account: bool = False,
    ) -> list[CartHold]:
        """Hold the whole cart: each deal item by the deal's reserve (deals by id), then each
        shop's items in one hold of that shop (shops by id; decision 0030). The first refusal
        gives back the holds already made and is raised, so nothing stays held. ``vouchers``
        names a code per shop; ``voucher`` applies in each shop that has that code (at least
        one must); ``expected_total`` is the sum of the holds' totals."""
        units, deal_units = await self.store.contents(buyer)
        if not units and not deal_units:
            raise Conflict("Nothing to check out.", code=CheckoutErrorCode.CART_EMPTY)
        deals: list[cart_deals.DealLine] = []
        if deal_units:
            async with db.session() as session:
                deals = await cart_deals.deal_lines(session, deal_units)
        parts = await self._shop_parts(db, units) if units else {}
        terms_of: dict[int, Voucher] = {}
        for shop, code in (vouchers or {}).items():
            if shop in parts:
                terms_of[shop] = await self._voucher(db, shop, code)
        if voucher is not None:
            for shop in parts:
                with contextlib.suppress(NotFound):
                    terms_of[shop] = await self._voucher(db, shop, voucher)
            if not terms_of:
                raise NotFound(
                    "No such voucher.", code=CheckoutErrorCode.VOUCHER_NOT_FOUND, code_asked=voucher
                )
        if len(parts) == 1 and not deals:
            ((shop, mine),) = parts.items()
            terms = terms_of.get(shop)
            hold = await self._hold(
                db, shop, buyer, request_id, mine, expected_total, terms, None, address
            )
            return [CartHold.of_shelf(hold)]
        held: list[CartHold] = []
        try:
            for line in deals:
                held.append(await self._hold_deal(line, buyer, request_id, address, account))
            for shop, mine in sorted(parts.items()):
                shelf_hold = await self._hold(
                    db, shop, buyer, request_id, mine, None, terms_of.get(shop), None, address
                )
                held.append(CartHold.of_shelf(shelf_hold))
            currencies = sorted({hold.currency for hold in held})
            if len(currencies) > 1:
                raise Conflict(
                    "One payment is in one currency: these shops price in several.",
                    code=CheckoutErrorCode.MIXED_CURRENCIES,
                    currencies=currencies,
                )
            total = sum(hold.total for hold in held)
            if expected_total is not None and total != expected_total:
                raise Conflict(
                    "The total changed since you looked: see each shop's hold and the new total.",
                    code=CheckoutErrorCode.QUOTE_CHANGED,
                    expected_total=expected_total,
                    total=total,
                )
        except BaseException:
            # Give back what this checkout took (a replayed hold included: the whole cart is
            # refused, so none of it stays held), on a refusal or on any failure (a store
            # unreachable, the request cancelled). A release that fails leaves that hold to
            # lapse at its deadline, as a hold whose answer was lost would.
            for taken in held:
                hold_id = taken.body["id"]
                try:
                    if hold_id.startswith("s"):
                        await self.shelving.shelf.release(hold_id, buyer)
                    else:
                        await self.holds.release(hold_id, buyer)
                except Exception:
                    log.warning("could not give back hold %s", hold_id, exc_info=True)
            raise
        return held

    async def _hold_deal(
        self,
        line: cart_deals.DealLine,
        buyer: str,
        request_id: str,
        address: str,
        account: bool,
    ) -> CartHold:
        request = ReserveRequest(buyer, line.qty, request_id, address, account)
        return CartHold.of_deal(await self.reserver.reserve(line.deal_id, request), line)

    async def _voucher(self, db: Database, shop: int, code: str) -> Voucher:
        async with db.session() as session:
            return await vouchers.get(session, shop, code)

    async def _shop_parts(self, db: Database, units: dict[int, int]) -> dict[int, dict[int, int]]:
        """``units`` split by shop. A SKU no shop has goes with the first shop's (or alone, as
        shop 0), where its hold refuses it as none left."""
        shops = await self._shops_of(db, units)
        parts: dict[int, dict[int, int]] = {}
        every = sorted({shops.get(sku, 0) for sku in units} - {0})
        first = every[0] if every else 0
        for sku, qty in units.items():
            parts.setdefault(shops.get(sku, first), {})[sku] = qty
        if 0 in parts:
            raise quoting.short([Shortfall(sku, qty, 0) for sku, qty in sorted(parts[0].items())])
        return parts

    async def _shops_of(self, db: Database, units: dict[int, int]) -> dict[int, int]:
        shelf = self.shelving.shelf
        shops = await shelf.shops_of(sorted(units))
        unknown = [sku for sku in units if sku not in shops]
        if unknown:  # never on a shelf: its terms come from SQL, once
            async with db.session() as session:
                await self.shelving.publish(session, unknown)
            shops = await shelf.shops_of(sorted(units))
        return shops

    async def _shop_part(
        self, db: Database, units: dict[int, int], shop_id: int | None
    ) -> tuple[int, dict[int, int]]:
        """The shop to check out and its units of ``units``."""
        shops = await self._shops_of(db, units)
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
            raise quoting.short([Shortfall(sku, qty, 0) for sku, qty in sorted(mine.items())])
        return shop, mine

    async def _hold(
        self,
        db: Database,
        shop: int,
        buyer: str,
        request_id: str,
        units: dict[int, int],
        expected_total: int | None,
        voucher: Voucher | None,
        quoted: ShelfQuote | None = None,
        address: str = "",
    ) -> ShelfHold:
        """Quote, price, hold. The first round may price from terms read a moment ago (the
        hold proves them current or refuses "repriced"); the others read the shelf. Each repair
        SQL owes the shelf happens at most once: a SKU, the shipping rule or the promotions
        never pushed, too few units on the shelf (its free ones are put there), a voucher never
        loaded."""
        shelf = self.shelving.shelf
        skus = sorted(units)
        repaired: set[str] = set()

        async def repair(what: str) -> bool:
            if what in repaired:
                return False
            repaired.add(what)
            async with db.session() as session:
                if what == "terms":
                    await self.shelving.publish(session, skus)
                elif what == "shipping":
                    await self.shelving.publish_shipping(session, shop)
                elif what == "promotions":
                    await self.shelving.publish_promotions(session, shop)
                elif what == "stock":
                    await self.shelving.fill(session, skus)
            if what == "voucher" and voucher is not None:
                await vouchers.put_on_shelf(shelf, voucher)
            return True

        for attempt in range(ATTEMPTS):
            if attempt == 0 and quoted is None:
                quoted = shelf.recent_quote(shop, skus)
            if attempt > 0 or quoted is None:  # a remembered quote serves the first round only
                quoted = await shelf.quote(shop, skus, buyer)
            if len(quoted.offers) < len(skus) and await repair("terms"):
                continue
            if quoted.shipping == "" and await repair("shipping"):
                continue
            if quoted.promotions == "" and await repair("promotions"):
                continue
            refused = quoting.refusal(quoted.offers, units, stock_known=quoted.stock_known)
            short = refused is not None and refused.code is CheckoutErrorCode.INSUFFICIENT_STOCK
            if short and await repair("stock"):
                continue
            if refused is not None:
                raise refused
            rule = quoting.shipping_rule(quoted.shipping)
            priced = quoting.price(quoted.offers, units, rule, voucher, quoted.promotions)
            if expected_total is not None and priced.quote.total != expected_total:
                if not quoted.stock_known:  # remembered terms may be older than what was shown
                    continue
                raise Conflict(
                    "The total changed since you looked: see the lines and the new total.",
                    code=CheckoutErrorCode.QUOTE_CHANGED,
                    expected_total=expected_total,
                    **priced.json(),
                )
            answer = await shelf.hold(
                shop,
                buyer,
                request_id,
                priced.lines,
                shipping_fee=priced.quote.shipping_fee,
                shipping_discount=priced.quote.shipping_discount,
                voucher="" if voucher is None else voucher.code,
                voucher_discount=priced.voucher_discount,
                priced_with=(quoted.shipping, priced.currency, quoted.promotions),
                address=address,
            )
            if not isinstance(answer, Refusal):
                return answer
            if answer.word == "repriced":
                continue
            if answer.word == "short" and await repair("stock"):
                continue
            if answer.word == "voucher_not_found" and await repair("voucher"):
                continue
            raise _refused(answer, units)
        raise Conflict(
            "Prices kept changing while we held your items; nothing was held. Try again.",
            code=CheckoutErrorCode.QUOTE_CHANGED,
        )


def _refused(refusal: Refusal, units: dict[int, int]) -> DomainError:
    if refusal.word == "short":
        return quoting.short(refusal.short)
    if refusal.word == "off_sale":  # its product was archived, or the SKU deleted: none left
        return quoting.short([Shortfall(sku, units.get(sku, 0), 0) for sku in refusal.off_sale])
    if refusal.word == "mixed_currencies":
        return Conflict(
            "One payment is in one currency: these items are priced in several.",
            code=CheckoutErrorCode.MIXED_CURRENCIES,
        )
    if refusal.word == "address_hold_limit":
        cap, *over = refusal.detail
        return Conflict(
            "Too many units of these items are held from your network; pay for or release "
            "one, or wait for holds to lapse.",
            code=CheckoutErrorCode.ADDRESS_HOLD_LIMIT,
            limit=int(cap),
            lines=[
                {"sku_id": int(sku), "held": int(held)}
                for sku, held in (item.split(":") for item in over)
            ],
        )
    if refusal.word == "voucher_not_claimed":
        return Conflict(
            "Claim this voucher in its live room first.",
            code=CheckoutErrorCode.VOUCHER_NOT_CLAIMED,
            room_id=int(refusal.detail[0]),
        )
    if refusal.word == "voucher_used":
        return Conflict(
            "You have used this voucher as often as one buyer may.",
            code=CheckoutErrorCode.VOUCHER_USED,
            per_buyer=int(refusal.detail[0]),
        )
    return vouchers.refusal([refusal.word, *refusal.detail])


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
