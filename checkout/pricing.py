"""What a basket costs (decision 0028, choice 5): the one function from lines, promotions, a
voucher and the shop's shipping rule to every amount a buyer sees and pays, and the share of it
a refund gives back. Pure and integer: money is minor units, rates are basis points, and every
split of an amount over lines adds up to it exactly. What a checkout makes per line is a named
tuple (a frozen dataclass costs several times as much to make, on every cart's hold).

The order discounts apply in:

1. product discounts (% off a product for a period; the caller passes those running now), on
   list-price lines only: a deal line's price is its discount;
2. bundles ("any 2 of these for 30"), on the list-price units left, most expensive first;
3. the voucher (a percentage or a fixed amount off the eligible lines, with a minimum spend and
   a cap; or a shipping voucher off the shipping fee), on what the lines cost after 1 and 2;
4. the shipping fee, from the merchandise after discounts (so "free over 50" means 50 paid).

The best voucher is the one that saves the most (ties: the lower code), among those the basket
qualifies for.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

BPS = 10_000  # basis points in a whole


class VoucherKind(enum.StrEnum):
    PERCENT = "percent"  # ``value`` in basis points off the eligible lines
    FIXED = "fixed"  # ``value`` minor units off the eligible lines
    SHIPPING = "shipping"  # ``value`` minor units off the shipping fee


class ShippingKind(enum.StrEnum):
    FLAT = "flat"  # ``fee`` per order
    FREE_OVER = "free_over"  # ``fee``, or nothing once the merchandise reaches ``free_over``
    PER_ITEM = "per_item"  # ``fee`` per unit


class Line(NamedTuple):
    sku_id: int
    product_id: int
    unit_price: int  # the list price, or the deal price on a deal line
    qty: int
    deal_id: int | None = None


class ProductDiscount(NamedTuple):
    product_id: int
    bps: int  # 1500 = 15 % off


class Bundle(NamedTuple):
    products: frozenset[int]
    size: int  # units per bundle
    price: int  # what ``size`` of them cost together


@dataclass(frozen=True)
class Voucher:
    code: str
    kind: VoucherKind
    value: int
    min_spend: int = 0  # on the eligible lines, after product discounts and bundles
    max_discount: int | None = None
    products: frozenset[int] | None = None  # None: every product of the shop


@dataclass(frozen=True)
class ShippingRule:
    kind: ShippingKind
    fee: int
    free_over: int = 0  # FREE_OVER only


FREE_SHIPPING = ShippingRule(ShippingKind.FLAT, 0)


class PricedLine(NamedTuple):
    line: Line
    subtotal: int  # unit price x quantity
    product_discount: int
    bundle_discount: int
    voucher_discount: int

    @property
    def total(self) -> int:
        return self.subtotal - self.product_discount - self.bundle_discount - self.voucher_discount


class Quote(NamedTuple):
    lines: tuple[PricedLine, ...]
    shipping_fee: int
    shipping_discount: int
    voucher: str | None  # the code applied, if any saved something

    @property
    def subtotal(self) -> int:
        return sum(p.subtotal for p in self.lines)

    @property
    def merchandise(self) -> int:
        """What the lines cost after every discount."""
        return sum(p.total for p in self.lines)

    @property
    def discount(self) -> int:
        """Every saving: products, bundles, voucher and shipping."""
        return self.subtotal - self.merchandise + self.shipping_discount

    @property
    def total(self) -> int:
        return self.merchandise + self.shipping_fee - self.shipping_discount


def split(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` over ``weights`` in proportion, in whole units that add up to it exactly
    (largest remainder; ties to the earlier weight). All zero weights: all on the first."""
    if not weights:
        return []
    whole = sum(weights)
    if whole == 0:
        return [amount] + [0] * (len(weights) - 1)
    shares = [amount * w // whole for w in weights]
    rest = amount - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % whole), i))
    for i in order[:rest]:
        shares[i] += 1
    return shares


def quote(
    lines: Sequence[Line],
    *,
    discounts: Iterable[ProductDiscount] = (),
    bundles: Iterable[Bundle] = (),
    voucher: Voucher | None = None,
    shipping: ShippingRule = FREE_SHIPPING,
) -> Quote:
    """The basket's amounts. A voucher the basket does not qualify for saves nothing (see
    ``qualifies``); the caller refuses it with a reason before quoting."""
    off = {d.product_id: d.bps for d in discounts}
    product = [
        0
        if line.deal_id is not None
        else line.unit_price * line.qty * off.get(line.product_id, 0) // BPS
        for line in lines
    ]
    bundle = _bundle_discounts(lines, product, tuple(bundles))
    after = [
        line.unit_price * line.qty - p - b
        for line, p, b in zip(lines, product, bundle, strict=True)
    ]
    goods_off = [0] * len(lines)
    shipping_off = 0
    merchandise = sum(after)
    if voucher is not None and qualifies(lines, after, voucher):
        eligible = [after[i] if applies_to(line, voucher) else 0 for i, line in enumerate(lines)]
        if voucher.kind is VoucherKind.SHIPPING:
            shipping_off = _capped(voucher.value, voucher)
        else:
            wanted = (
                sum(eligible) * voucher.value // BPS
                if voucher.kind is VoucherKind.PERCENT
                else voucher.value
            )
            goods_off = split(min(_capped(wanted, voucher), sum(eligible)), eligible)
            merchandise -= sum(goods_off)
    fee = shipping_fee(shipping, merchandise, sum(line.qty for line in lines))
    shipping_off = min(shipping_off, fee)
    priced = tuple(
        PricedLine(line, line.unit_price * line.qty, p, b, v)
        for line, p, b, v in zip(lines, product, bundle, goods_off, strict=True)
    )
    saved = any(goods_off) or shipping_off > 0
    return Quote(priced, fee, shipping_off, voucher.code if voucher and saved else None)


def qualifies(lines: Sequence[Line], after: Sequence[int], voucher: Voucher) -> bool:
    """Whether the basket meets the voucher's terms: some line it applies to, and its minimum
    spend on those lines (after product discounts and bundles)."""
    eligible = [a for line, a in zip(lines, after, strict=True) if applies_to(line, voucher)]
    return bool(eligible) and sum(eligible) >= voucher.min_spend


def best_voucher(
    lines: Sequence[Line],
    vouchers: Iterable[Voucher],
    *,
    discounts: Iterable[ProductDiscount] = (),
    bundles: Iterable[Bundle] = (),
    shipping: ShippingRule = FREE_SHIPPING,
) -> Voucher | None:
    """The voucher that saves the basket the most (ties: the lower code); None when none saves
    anything."""
    discounts, bundles = tuple(discounts), tuple(bundles)
    plain = quote(lines, discounts=discounts, bundles=bundles, shipping=shipping).total
    best: tuple[int, str, Voucher] | None = None
    for voucher in vouchers:
        total = quote(
            lines, discounts=discounts, bundles=bundles, voucher=voucher, shipping=shipping
        ).total
        saving = plain - total
        if saving > 0 and (best is None or (-saving, voucher.code) < (-best[0], best[1])):
            best = (saving, voucher.code, voucher)
    return None if best is None else best[2]


def discounted(unit_price: int, bps: int) -> int:
    """One unit's price after a product discount of ``bps``, as ``quote`` takes it off (what
    the storefront and the bag show beside the list price)."""
    return unit_price - unit_price * bps // BPS


def shipping_fee(rule: ShippingRule, merchandise: int, units: int) -> int:
    if rule.kind is ShippingKind.PER_ITEM:
        return rule.fee * units
    if rule.kind is ShippingKind.FREE_OVER and merchandise >= rule.free_over:
        return 0
    return rule.fee


def refund_share(priced: PricedLine, refunded_units: int, units: int) -> int:
    """What refunding ``units`` more of a priced line gives back, after ``refunded_units``
    were (``unit_share`` of its total)."""
    return unit_share(priced.total, priced.line.qty, refunded_units, units)


def unit_share(total: int, qty: int, refunded_units: int, units: int) -> int:
    """What refunding ``units`` more of a line of ``qty`` units costing ``total`` gives back,
    after ``refunded_units`` were: the total split over its units, so refunding every unit
    gives back exactly the total."""
    if not 0 <= refunded_units <= refunded_units + units <= qty:
        raise ValueError("units outside the line")
    per_unit = split(total, [1] * qty)
    return sum(per_unit[refunded_units : refunded_units + units])


def applies_to(line: Line, voucher: Voucher) -> bool:
    return voucher.products is None or line.product_id in voucher.products


def _capped(amount: int, voucher: Voucher) -> int:
    return amount if voucher.max_discount is None else min(amount, voucher.max_discount)


def _bundle_discounts(
    lines: Sequence[Line], product_off: Sequence[int], bundles: Sequence[Bundle]
) -> list[int]:
    """Each line's share of the bundles' savings. Every bundle groups the list-price units of
    its products not yet bundled, most expensive (after product discounts) first, ``size`` at a
    time; a group whose units cost more than the bundle's price saves the difference, split
    over its units in proportion to their prices."""
    off = [0] * len(lines)
    taken = [0] * len(lines)  # units already in a bundle
    for bundle in bundles:
        units: list[tuple[int, int]] = []  # (unit price after product discount, line index)
        for i, line in enumerate(lines):
            if line.deal_id is not None or line.product_id not in bundle.products:
                continue
            prices = split(line.unit_price * line.qty - product_off[i], [1] * line.qty)
            units += [(price, i) for price in prices[taken[i] :]]
        units.sort(key=lambda u: (-u[0], u[1]))
        for start in range(0, len(units) - bundle.size + 1, bundle.size):
            group = units[start : start + bundle.size]
            saving = sum(price for price, _ in group) - bundle.price
            if saving <= 0:
                continue
            for (_, i), share in zip(group, split(saving, [p for p, _ in group]), strict=True):
                off[i] += share
                taken[i] += 1
    return off
