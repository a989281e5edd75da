"""Refunds of a cart's order by line (decision 0028): a refund names so many units of a SKU,
or takes the next units not yet refunded, and gives back each unit's share of its line after
discounts; the last units take the shipping fee with them; a line can be refunded no further
than its units; restocked units go back to the SKU of the line named. Over HTTP against the
running server, and the pure rules in checkout/line_refunds.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from checkout import line_refunds
from checkout.line_refunds import LineMove, Pick, RefundLine
from kernel.db import Database
from kernel.errors import DomainError
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import LIST_PRICE, assert_error, checkout, orders_seen_by, poll
from tests.test_cart import cart_checkout, put, sku_row, two_skus
from tests.test_promotions import product_of_sku, promote
from tests.test_redeem import LARGE_PRICE, set_shipping
from web.auth import GuestSessions

SHIPPING = 499


async def refund(
    http: httpx.AsyncClient, seller: SellerAccount, order_id: int, key: str, **body: Any
) -> httpx.Response:
    return await http.post(
        f"/api/orders/{order_id}/refund",
        headers={**seller.headers, "Idempotency-Key": key},
        json=body,
    )


@pytest.mark.storage
async def test_a_cart_order_is_refunded_line_by_line_at_each_lines_price(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    m, large = await two_skus(http, seller, stock=(5, 3))
    jacket = await product_of_sku(db, m)
    assert (await promote(http, seller, kind="discount", products=[jacket], bps=1000)).is_success
    assert (await set_shipping(http, seller, kind="flat", fee=SHIPPING)).is_success
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, m, 2)
    await put(http, buyer, large, 1)
    held = (await cart_checkout(http, buyer)).json()["hold"]
    m_line, large_line = 2 * LIST_PRICE * 9 // 10, LARGE_PRICE * 9 // 10  # 17820, 2250
    assert held["total"] == m_line + large_line + SHIPPING
    assert (await checkout(http, held["id"], buyer, key="pay")).status_code == 201
    (order,) = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    oid = order["id"]
    free_before = {sku: (await sku_row(db, sku)).stock for sku in (m, large)}

    # The large one, named, back in stock: its price after the discount, not the order's
    # first line's list price.
    r = await refund(http, seller, oid, "a", lines=[{"sku_id": large, "units": 1}], restock=1)
    assert r.status_code == 200, r.text
    assert (r.json()["refund"]["amount"], r.json()["order"]["restocked_units"]) == (2250, 1)
    assert (await sku_row(db, large)).stock == free_before[large] + 1
    assert (await sku_row(db, m)).stock == free_before[m]

    # By units: the next unit not yet refunded is the first M.
    r = await refund(http, seller, oid, "b", units=1)
    assert (r.status_code, r.json()["refund"]["amount"]) == (200, m_line // 2), r.text

    # Refused, and nothing moves: a line refunded in full, a SKU not in the order, a restock
    # beyond the units named, two ways at once.
    refusals = [
        ({"lines": [{"sku_id": large, "units": 1}]}, "invalid_units"),
        ({"lines": [{"sku_id": 2_000_000_000, "units": 1}]}, "invalid_units"),
        ({"lines": [{"sku_id": m, "units": 2}]}, "invalid_units"),
        ({"lines": [{"sku_id": m, "units": 1}], "restock": 2}, "restock_exceeds_units"),
        ({"lines": [{"sku_id": m, "units": 1}], "amount": 100}, "invalid_amount"),
        ({"units": 2}, "invalid_units"),
    ]
    for n, (body, code) in enumerate(refusals):
        assert_error(await refund(http, seller, oid, f"bad{n}", **body), 422, code)
    r = await http.get(f"/api/orders/{oid}", headers=seller.headers)
    assert (r.json()["order"]["refunded"], r.json()["order"]["status"]) == (
        2250 + m_line // 2,
        order["status"],
    )

    # The last unit takes the shipping fee with it: the order is refunded in full.
    r = await refund(http, seller, oid, "c", lines=[{"sku_id": m, "units": 1}], restock=1)
    assert r.status_code == 200, r.text
    assert r.json()["refund"]["amount"] == m_line // 2 + SHIPPING
    after = r.json()["order"]
    assert (after["refunded"], after["status"], after["restocked_units"]) == (
        held["total"],
        "refunded",
        2,
    )
    assert (await sku_row(db, m)).stock == free_before[m] + 1


def lines3() -> list[RefundLine]:
    # 3 units costing 2900 in all (967 + 967 + 966), and 2 costing 1000; none refunded yet.
    return [RefundLine(1, 10, 3, 2900, 0, 0), RefundLine(2, 11, 2, 1000, 0, 0)]


def test_units_are_worth_their_share_of_their_line_and_run_in_line_order() -> None:
    lines = lines3()
    moves = line_refunds.next_units(lines, 4)
    assert moves == [LineMove(0, refunded=3), LineMove(1, refunded=1)]
    assert line_refunds.worth(lines, moves) == 2900 + 500
    assert not line_refunds.all_refunded(lines, moves)
    assert line_refunds.all_refunded(lines, line_refunds.next_units(lines, 5))
    # After two units of the first line went back, the next one is its third (966).
    later = [RefundLine(1, 10, 3, 2900, 2, 0), lines[1]]
    assert line_refunds.worth(later, line_refunds.next_units(later, 1)) == 966


def test_named_units_are_checked_and_restock_follows_the_lines_named() -> None:
    lines = lines3()
    moves = line_refunds.named(lines, [Pick(11, 1), Pick(10, 1)])
    assert moves == [LineMove(1, refunded=1), LineMove(0, refunded=1)]
    assert line_refunds.restock(lines, moves, 2, named=True) == [
        LineMove(0, refunded=1, restocked=1),
        LineMove(1, refunded=1, restocked=1),
    ]
    with pytest.raises(DomainError) as over:
        line_refunds.restock(lines, moves, 3, named=True)
    assert over.value.code == "restock_exceeds_units"
    # Not named: restock runs over the lines in order, after what is already back.
    back = [RefundLine(1, 10, 3, 2900, 0, 2), lines[1]]
    assert line_refunds.restock(back, [], 2, named=False) == [
        LineMove(0, restocked=1),
        LineMove(1, restocked=1),
    ]
    for picks in ([Pick(12, 1)], [Pick(10, 2), Pick(10, 2)]):
        with pytest.raises(DomainError) as refused:
            line_refunds.named(lines, picks)
        assert refused.value.code == "invalid_units"


def test_the_last_units_take_the_shipping_paid_and_never_what_else_is_left() -> None:
    lines = lines3()
    every = line_refunds.next_units(lines, 5)
    assert line_refunds.amount(lines, every, left=10_000, shipping=499) == 3900 + 499
    assert line_refunds.amount(lines, every, left=3000, shipping=499) == 3000
    # Nothing refunded is never "the last units" (a request left with no units to price).
    assert not line_refunds.all_refunded(lines, [])
    assert line_refunds.amount(lines, [], left=10_000, shipping=499) == 0
    # Units counted refunded by a refund whose money did not go back (it failed at the
    # provider) leave that money in ``left``: refunding the other line's units gives back
    # their worth and the shipping, not everything left.
    counted = [RefundLine(1, 10, 3, 2900, 3, 0), lines[1]]
    rest = line_refunds.next_units(counted, 2)
    assert line_refunds.amount(counted, rest, left=4399, shipping=499) == 1000 + 499
