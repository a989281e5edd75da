"""checkout/quoting.py's price: baskets priced lately are remembered (a storm prices each distinct
basket once), and what is remembered is never another basket's price or refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkout import pricing, quoting
from checkout.models import Voucher
from checkout.shelf import Offer, SaleTerms
from kernel.errors import Conflict

RULE = quoting.shipping_rule("free_over:499:5000")


def offers(prices: dict[int, int], currency: str = "USD") -> dict[int, Offer]:
    return {
        sku: Offer(SaleTerms(sku, price, currency, True, sku * 10), 5)
        for sku, price in prices.items()
    }


def uncached(prices: dict[int, int], units: dict[int, int]) -> pricing.Quote:
    basket = [pricing.Line(sku, sku * 10, prices[sku], qty) for sku, qty in sorted(units.items())]
    return pricing.quote(basket, shipping=RULE)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 3000), st.integers(1, 5)),
        min_size=1,
        max_size=6,
    )
)
def test_each_basket_costs_what_pricing_says_however_often_it_was_priced(
    draws: list[tuple[int, int, int]],
) -> None:
    # Few SKUs and prices, many draws: the same basket comes back, and so do its neighbours
    # (same SKUs at another price or quantity), which must not get its remembered answer.
    for sku, price, qty in draws:
        prices, units = {sku: price, 9: 1200}, {sku: qty, 9: 1}
        got = quoting.price(offers(prices), units, RULE, None, "[]")
        assert got.quote == uncached(prices, units)
        assert [line.total for line in got.lines] == [p.total for p in got.quote.lines]


def test_a_remembered_basket_still_refuses_a_voucher_it_cannot_use() -> None:
    prices, units = {1: 1000, 2: 1500}, {1: 1, 2: 1}
    plain = quoting.price(offers(prices), units, RULE, None, "[]")
    voucher = Voucher(
        shop_id=1,
        code="BIG",
        kind="fixed",
        value=500,
        min_spend=10_000,
        currency="USD",
        budget=10,
        per_buyer=1,
        created_ms=0,
        starts_ms=0,
        ends_ms=2**62,
    )
    for _ in range(2):  # the second time from the memo
        with pytest.raises(Conflict) as refused:
            quoting.price(offers(prices), units, RULE, voucher, "[]")
        assert refused.value.code == "voucher_min_spend"
    again = quoting.price(offers(prices), units, RULE, None, "[]")
    assert again == plain
