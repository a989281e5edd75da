"""A flash deal's item in a cart (decision 0028, choice 3), over HTTP against the running
server: it is held at the deal's price by the deal's own reserve, beside the shops' holds, in
one checkout; paid by the same one request; an order of its own. The deal's per-buyer limit
holds however the buyer mixes the room's Buy and the cart, a refusal of the deal leaves no
shop's unit held, and racing carts never take more than the deal's quantity."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from checkout.holds import HoldStore
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    LIST_PRICE,
    Headers,
    assert_error,
    make_live_deal,
    make_seller,
    orders_seen_by,
    poll,
)
from tests.test_cart import cart_checkout, put
from tests.test_cart_shops import held_units, pay, sku_of
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
DEAL_PRICE = 2500  # make_live_deal's


async def put_deal(
    http: httpx.AsyncClient, buyer: Headers, deal_id: int, qty: int
) -> httpx.Response:
    return await http.put(f"/api/cart/deals/{deal_id}", headers=buyer, json={"qty": qty})


async def test_a_deal_item_is_held_and_paid_with_the_cart_at_the_deal_price(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    holds: HoldStore,
) -> None:
    deal = await make_live_deal(db, holds, seller, quantity=10, limit=2)
    other = await make_seller(db)
    mug = await sku_of(http, other, 5)
    _, buyer = viewer_headers(sessions)
    r = await put_deal(http, buyer, deal.id or 0, 2)
    assert r.status_code == 200, r.text
    (line,) = r.json()["cart"]["deals"]
    assert (line["deal_id"], line["qty"], line["unit_price"], line["status"]) == (
        deal.id,
        2,
        DEAL_PRICE,
        "live",
    )
    await put(http, buyer, mug, 1)

    r = await cart_checkout(
        http, buyer, request_id="c1", expected_total=2 * DEAL_PRICE + LIST_PRICE
    )
    assert r.status_code == 201, r.text
    deal_hold, shop_hold = r.json()["holds"]
    assert (deal_hold["deal_id"], deal_hold["qty"], deal_hold["total"]) == (
        deal.id,
        2,
        2 * DEAL_PRICE,
    )
    assert shop_hold["id"].startswith(f"s{other.shop.id}-")
    counters = await holds.counters(deal.id or 0)
    assert counters is not None and counters.held == 2

    r = await pay(http, buyer, [deal_hold["id"], shop_hold["id"]], "k")
    assert r.status_code == 201, r.text
    assert [o["amount"] for o in r.json()["orders"]] == [2 * DEAL_PRICE, LIST_PRICE]
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) == 2)
    by_deal = {o["deal_id"]: o for o in orders}
    assert (by_deal[deal.id]["quantity"], by_deal[deal.id]["unit_price"]) == (2, DEAL_PRICE)
    assert by_deal[None]["shop_id"] == other.shop.id
    cart = (await http.get("/api/cart", headers=buyer)).json()["cart"]
    assert (cart["deals"], cart["lines"]) == ([], [])


async def test_the_deals_limit_holds_across_the_room_and_the_cart_and_a_refusal_holds_nothing(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    holds: HoldStore,
) -> None:
    deal = await make_live_deal(db, holds, seller, quantity=10, limit=2)
    deal_id = deal.id or 0
    other = await make_seller(db)
    mug = await sku_of(http, other, 5)
    _, buyer = viewer_headers(sessions)
    assert_error(await put_deal(http, buyer, deal_id, 3), 409, "limit_exceeded")
    assert_error(await put_deal(http, buyer, 2_000_000_000, 1), 404, "deal_not_found")
    assert (await put_deal(http, buyer, deal_id, 2)).status_code == 200
    await put(http, buyer, mug, 1)
    # One unit bought from the room's Buy first: the cart's two would pass the limit.
    tapped = await http.post(f"/api/deals/{deal_id}/reserve", headers=buyer, json={"qty": 1})
    assert tapped.status_code == 201, tapped.text
    assert_error(await cart_checkout(http, buyer), 409, "limit_exceeded")
    counters = await holds.counters(deal_id)
    assert counters is not None and counters.held == 1  # the room's hold only
    assert await held_units(holds, other, mug) == 0
    # Within the limit, it holds.
    assert (await put_deal(http, buyer, deal_id, 1)).status_code == 200
    assert (await cart_checkout(http, buyer)).status_code == 201
    # A shop that cannot hold gives back the deal's unit held before it.
    _, greedy = viewer_headers(sessions)
    assert (await put_deal(http, greedy, deal_id, 1)).status_code == 200
    await put(http, greedy, mug, 50)
    assert_error(await cart_checkout(http, greedy), 409, "insufficient_stock")
    counters = await holds.counters(deal_id)
    assert counters is not None and counters.held == 2  # the first buyer's two


@pytest.mark.xdist_group("races")  # one race at a time on a 2-core machine
async def test_racing_carts_take_no_more_than_the_deal_and_leave_no_shop_unit_held(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    holds: HoldStore,
) -> None:
    """60 buyers, each with a unit of a 5-unit deal and a unit of another shop's plentiful
    SKU in the cart, check out at once: exactly 5 get both, the deal holds 5, the shop 5."""
    deal = await make_live_deal(db, holds, seller, quantity=5, limit=1)
    other = await make_seller(db)
    mug = await sku_of(http, other, 100)
    buyers = [viewer_headers(sessions)[1] for _ in range(60)]
    for buyer in buyers:
        assert (await put_deal(http, buyer, deal.id or 0, 1)).status_code == 200
        await put(http, buyer, mug, 1)
    answers = await asyncio.gather(*(cart_checkout(http, buyer) for buyer in buyers))
    won = [r for r in answers if r.status_code == 201]
    assert len(won) == 5, Counter(
        r.json()["error"]["code"] for r in answers if r.status_code != 201
    )
    for r in answers:
        if r.status_code != 201:
            assert r.json()["error"]["code"] in ("sold_out", "insufficient_stock"), r.text
    counters = await holds.counters(deal.id or 0)
    assert counters is not None
    assert (counters.held, counters.available) == (5, 0)
    assert await held_units(holds, other, mug) == 5
