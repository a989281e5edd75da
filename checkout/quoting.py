"""From what a shop's shelf says (``ShelfStore.quote``) and the voucher a buyer names to the
priced lines a cart hold stores (decision 0028): the glue between the shelf and
``checkout/pricing.py``, which alone decides what anything costs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from checkout import pricing, promotions
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Voucher
from checkout.shelf import Line, Offer, Shortfall
from kernel.clock import now_ms
from kernel.errors import Conflict, DomainError


@dataclass(frozen=True)
class Priced:
    """A basket priced: the lines as the hold stores them, and every amount the buyer sees."""

    lines: tuple[Line, ...]
    quote: pricing.Quote
    currency: str

    @property
    def voucher_discount(self) -> int:
        """The voucher's saving on the goods (its saving on shipping is the quote's own)."""
        return sum(p.voucher_discount for p in self.quote.lines)

    def json(self) -> dict[str, object]:
        return {
            "lines": [line.json() for line in self.lines],
            "subtotal": self.quote.subtotal,
            "discount": self.quote.discount,
            "voucher_discount": self.voucher_discount,
            "shipping_fee": self.quote.shipping_fee,
            "shipping_discount": self.quote.shipping_discount,
            "voucher": self.quote.voucher,
            "total": self.quote.total,
            "currency": self.currency,
        }


@dataclass(frozen=True)
class ShopQuote:
    """A shop's part of a cart as the buyer would pay it: the shipping fee and the best
    voucher the buyer can use (the one saving the most)."""

    shop_id: int
    currency: str
    quote: pricing.Quote

    def json(self) -> dict[str, object]:
        return {
            "shop_id": self.shop_id,
            "currency": self.currency,
            "subtotal": self.quote.subtotal,
            "discount": self.quote.discount,
            "voucher_discount": sum(p.voucher_discount for p in self.quote.lines),
            "shipping_fee": self.quote.shipping_fee,
            "shipping_discount": self.quote.shipping_discount,
            "voucher": self.quote.voucher,
            "total": self.quote.total,
        }


def usable(voucher: Voucher, claims: tuple[int, int, int | None], now: int) -> bool:
    """Whether a checkout now could redeem the voucher for this buyer, as the hold decides:
    in its window, and an unused claim, or (not bound to a live room) a claim to make."""
    claimed, used, left = claims
    if not voucher.starts_ms <= now < voucher.ends_ms:
        return False
    if used < claimed:
        return True
    budget_left = voucher.budget if left is None else left
    return voucher.room_id is None and claimed < voucher.per_buyer and budget_left > 0


def best(
    shop_id: int,
    lines: list[pricing.Line],
    currency: str,
    shipping: pricing.ShippingRule,
    candidates: list[Voucher],
    promoted: str = "",
) -> ShopQuote:
    """The shop's part priced with its running promotions (``promoted``: as encoded for the
    shelf) and the best of the candidate vouchers that applies."""
    terms = [
        voucher_terms(v)
        for v in candidates
        if v.kind == pricing.VoucherKind.PERCENT or v.currency == currency
    ]
    discounts, bundles = promotions.running(promoted, now_ms(), currency)
    chosen = pricing.best_voucher(
        lines, terms, discounts=discounts, bundles=bundles, shipping=shipping
    )
    quote = pricing.quote(
        lines, discounts=discounts, bundles=bundles, voucher=chosen, shipping=shipping
    )
    return ShopQuote(shop_id, currency, quote)


@functools.lru_cache(maxsize=1024)  # a handful of rules, parsed on every checkout
def shipping_rule(encoded: str) -> pricing.ShippingRule:
    """A shelf's "kind:fee:free_over" as pricing's rule; "" (never pushed) is free shipping."""
    if not encoded:
        return pricing.FREE_SHIPPING
    kind, fee, free_over = encoded.split(":")
    return pricing.ShippingRule(pricing.ShippingKind(kind), int(fee), int(free_over))


def voucher_terms(voucher: Voucher) -> pricing.Voucher:
    return pricing.Voucher(
        code=voucher.code,
        kind=pricing.VoucherKind(voucher.kind),
        value=voucher.value,
        min_spend=voucher.min_spend,
        max_discount=voucher.max_discount,
        products=None if voucher.products is None else frozenset(voucher.products),
    )


def refusal(
    offers: Mapping[int, Offer], units: Mapping[int, int], *, stock_known: bool = True
) -> DomainError | None:
    """What the hold would refuse, read from the quote: a SKU off sale, too few units (a SKU
    with no terms on this shelf has none; units only when the quote counted them), or lines
    in several currencies. None: none of it."""
    currencies = set()
    for sku, qty in units.items():  # the common case in one pass: every line can be held
        offer = offers.get(sku)
        if offer is None or not offer.terms.on_sale or (stock_known and offer.available < qty):
            break
        currencies.add(offer.terms.currency)
    else:
        if len(currencies) <= 1:
            return None
    off_sale = [sku for sku in sorted(units) if sku in offers and not offers[sku].terms.on_sale]
    if off_sale:  # archived or deleted: none left of it
        return short([Shortfall(sku, units[sku], 0) for sku in off_sale])
    shortfalls = [
        Shortfall(sku, qty, offers[sku].available if sku in offers else 0)
        for sku, qty in sorted(units.items())
        if sku not in offers or (stock_known and offers[sku].available < qty)
    ]
    if shortfalls:
        return short(shortfalls)
    if len({offers[sku].terms.currency for sku in units}) > 1:
        return Conflict(
            "One payment is in one currency: these items are priced in several.",
            code=CheckoutErrorCode.MIXED_CURRENCIES,
        )
    return None


def price(
    offers: Mapping[int, Offer],
    units: Mapping[int, int],
    shipping: pricing.ShippingRule,
    voucher: Voucher | None,
    promoted: str = "",
) -> Priced:
    """Price the units (every SKU on offer, in one currency: see ``refusal``) with the running
    promotions (``promoted``: as the shelf keeps them) and the voucher. A voucher the basket
    cannot use is refused with the reason, before anything is held."""
    skus = sorted(units)
    currency = offers[skus[0]].terms.currency
    basket = tuple(
        pricing.Line(sku, offers[sku].terms.product_id, offers[sku].terms.price, units[sku])
        for sku in skus
    )
    discounts, bundles = promotions.running(promoted, now_ms(), currency)
    terms = None if voucher is None else voucher_terms(voucher)
    # A percentage is in no currency; an amount is in the voucher's.
    amount_in = None if terms is None or terms.kind is pricing.VoucherKind.PERCENT else voucher
    if terms is not None and amount_in is not None and amount_in.currency != currency:
        raise _not_applicable(terms)
    quote, lines = _quoted(basket, tuple(discounts), tuple(bundles), terms, shipping)
    if terms is not None and quote.voucher is None:
        raise _saves_nothing(quote, terms)
    return Priced(lines, quote, currency)


# Baskets priced lately, by everything their price depends on. ``pricing.quote`` is pure, and in
# a live sale thousands of buyers check out the same pinned items within seconds: each distinct
# basket is priced once (a 3-line quote cost ~15 us, about a tenth of a cart hold's CPU).
QUOTES_REMEMBERED = 4096


@functools.lru_cache(maxsize=QUOTES_REMEMBERED)
def _quoted(
    basket: tuple[pricing.Line, ...],
    discounts: tuple[pricing.ProductDiscount, ...],
    bundles: tuple[pricing.Bundle, ...],
    voucher: pricing.Voucher | None,
    shipping: pricing.ShippingRule,
) -> tuple[pricing.Quote, tuple[Line, ...]]:
    quote = pricing.quote(
        basket, discounts=discounts, bundles=bundles, voucher=voucher, shipping=shipping
    )
    lines = tuple(
        Line(p.line.sku_id, p.line.qty, p.line.unit_price, p.subtotal - p.total)
        for p in quote.lines
    )
    return quote, lines


def _saves_nothing(quote: pricing.Quote, terms: pricing.Voucher) -> Conflict:
    """Why a voucher named at checkout would save nothing: its minimum spend (on the lines it
    applies to, after promotions), or nothing it applies to (no line, or no shipping to take
    off). Refused before it is redeemed, so no use of it is spent on nothing."""
    spend = sum(
        p.subtotal - p.product_discount - p.bundle_discount
        for p in quote.lines
        if pricing.applies_to(p.line, terms)
    )
    if spend and spend < terms.min_spend:
        return Conflict(
            "The items this voucher applies to cost less than its minimum spend.",
            code=CheckoutErrorCode.VOUCHER_MIN_SPEND,
            voucher=terms.code,
            min_spend=terms.min_spend,
            spend=spend,
        )
    return _not_applicable(terms)


def _not_applicable(terms: pricing.Voucher) -> Conflict:
    return Conflict(
        "This voucher does not apply to these items.",
        code=CheckoutErrorCode.VOUCHER_NOT_APPLICABLE,
        voucher=terms.code,
    )


def short(shortfalls: list[Shortfall]) -> Conflict:
    return Conflict(
        "Not enough left of some items; nothing was held.",
        code=CheckoutErrorCode.INSUFFICIENT_STOCK,
        lines=[
            {"sku_id": s.sku_id, "wanted": s.wanted, "available": s.available} for s in shortfalls
        ],
    )
