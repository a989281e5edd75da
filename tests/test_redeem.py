"""Redeeming vouchers and paying shipping at checkout, over HTTP against the running server
(decision 0028): the cart shows each shop's shipping fee and the best voucher the buyer can use;
a checkout naming a voucher holds the lines at their discounted prices and redeems one claim in
the same shelf call; the order records each line's discount, the shipping fee and the code; a
lapsed or released hold gives the use back; every refusal holds nothing; a storm of checkouts on
a voucher of 50 uses redeems exactly 50; a hold that lapses gives its use back; a voucher or
shipping rule whose push to the shelf was lost is made good."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col

from catalog.models import Shop
from checkout.keys import Keyspace
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    LIST_PRICE,
    Headers,
    assert_error,
    checkout,
    orders_seen_by,
    poll,
    resync_shelves,
)
from tests.test_cart import cart_checkout, line, put, two_skus
from tests.test_vouchers import claim, make
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

LARGE_PRICE = 2500  # two_skus's second SKU


async def set_shipping(
    http: httpx.AsyncClient, seller: SellerAccount, **rule: Any
) -> httpx.Response:
    return await http.put(
        f"/api/shops/{seller.shop.id}/shipping", headers=seller.headers, json=rule
    )


async def stock_of(http: httpx.AsyncClient, product_of: int) -> dict[str, int]:
    r = await http.get("/api/stock", params={"product_id": product_of})
    stock: dict[str, int] = r.json()["stock"]
    return stock


async def product_of(http: httpx.AsyncClient, seller: SellerAccount) -> int:
    r = await http.get("/api/products", params={"shop_id": seller.shop.id})
    product_id: int = r.json()["products"][0]["id"]
    return product_id


async def test_shipping_is_quoted_in_the_cart_held_and_recorded_on_the_order(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    m, large = await two_skus(http, seller)
    r = await set_shipping(http, seller, kind="free_over", fee=500, free_over=5000)
    assert r.json() == {
        "shop_id": seller.shop.id,
        "shipping": {"kind": "free_over", "fee": 500, "free_over": 5000},
    }
    assert (await http.get(f"/api/shops/{seller.shop.id}/shipping")).json() == r.json()
    _, buyer = viewer_headers(sessions)
    r = await put(http, buyer, large, 1)  # 25.00: under the free-shipping line
    (shop,) = r.json()["cart"]["shops"]
    assert (shop["subtotal"], shop["shipping_fee"], shop["total"]) == (2500, 500, 3000)
    r = await cart_checkout(http, buyer, expected_total=3000)
    assert r.status_code == 201, r.text
    hold = r.json()["hold"]
    assert (hold["subtotal"], hold["shipping_fee"], hold["total"]) == (2500, 500, 3000)
    paid = await checkout(http, hold["id"], buyer, key="ship-1")
    assert paid.json()["order"]["amount"] == 3000
    (order,) = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert (order["total"], order["shipping_fee"], order["discount"]) == (3000, 500, 0)

    # Over the line, free: a buy-now of the 99.00 SKU pays no shipping.
    r = await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}], shop_id=seller.shop.id)
    assert (r.json()["hold"]["shipping_fee"], r.json()["total"]) == (0, LIST_PRICE)

    # Per item: the fee times the units. A rule that cannot be is refused.
    assert (await set_shipping(http, seller, kind="per_item", fee=200)).status_code == 200
    r = await cart_checkout(http, buyer, items=[{"sku_id": large, "qty": 2}])
    assert r.json()["total"] == 2 * 2500 + 2 * 200
    bad = await set_shipping(http, seller, kind="flat", fee=100, free_over=10)
    assert_error(bad, 422, "invalid_shipping_rule")
    assert_error(
        await set_shipping(http, seller, kind="free_over", fee=100), 422, "invalid_shipping_rule"
    )
    assert_error(await set_shipping(http, seller, kind="flat", fee=-1), 422, "invalid_request")


async def test_a_voucher_discounts_the_hold_and_the_order_records_each_discount(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    m, large = await two_skus(http, seller)
    await set_shipping(http, seller, kind="flat", fee=400)
    assert (await make(http, seller, code="TEN", min_spend=5000, per_buyer=2)).status_code == 201
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, m, 1)
    r = await put(http, buyer, large, 2)
    (shop,) = r.json()["cart"]["shops"]
    subtotal = LIST_PRICE + 2 * LARGE_PRICE  # 149.00
    # The cart shows the best voucher the buyer can use: 10 % of the goods.
    assert (shop["voucher"], shop["discount"], shop["shipping_fee"]) == ("TEN", 1490, 400)
    assert shop["total"] == subtotal - 1490 + 400

    r = await cart_checkout(http, buyer, voucher="TEN", expected_total=shop["total"])
    assert r.status_code == 201, r.text
    hold = r.json()["hold"]
    # The discount is split over the lines in proportion to their prices (990 + 500 = 1490).
    assert hold["lines"] == [line(m, 1, LIST_PRICE, 990), line(large, 2, LARGE_PRICE, 500)]
    assert (hold["voucher"], hold["discount"], hold["total"]) == ("TEN", 1490, shop["total"])
    assert (await http.get(f"/api/holds/{hold['id']}", headers=buyer)).json()["hold"] == hold
    paid = await checkout(http, hold["id"], buyer, key="ten-1")
    assert paid.json()["order"]["amount"] == shop["total"]
    (order,) = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert (order["voucher"], order["discount"], order["shipping_fee"], order["total"]) == (
        "TEN",
        1490,
        400,
        shop["total"],
    )
    assert [(x["discount"], x["total"]) for x in order["lines"]] == [(990, 8910), (500, 4500)]


async def test_a_use_goes_back_with_a_released_hold_and_runs_out_with_orders(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    m, _ = await two_skus(http, seller)
    assert (await make(http, seller, code="ONCE", kind="fixed", value=1000)).status_code == 201
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": m, "qty": 1}]
    first = await cart_checkout(http, buyer, items=items, voucher="ONCE")
    assert first.json()["total"] == LIST_PRICE - 1000
    # Its one use is in that hold.
    assert_error(await cart_checkout(http, buyer, items=items, voucher="ONCE"), 409, "voucher_used")
    released = await http.delete(f"/api/holds/{first.json()['hold']['id']}", headers=buyer)
    assert released.status_code == 204, released.text
    again = await cart_checkout(http, buyer, items=items, voucher="ONCE")
    assert again.status_code == 201, again.text
    paid = await checkout(http, again.json()["hold"]["id"], buyer, key="once-1")
    assert paid.status_code == 201, paid.text
    assert_error(await cart_checkout(http, buyer, items=items, voucher="ONCE"), 409, "voucher_used")
    # The budget counts claims: one of 100 taken.
    listed = (await http.get(f"/api/shops/{seller.shop.id}/vouchers")).json()["vouchers"]
    assert [(v["code"], v["left"]) for v in listed] == [("ONCE", 99)]


async def test_refused_vouchers_say_why_and_hold_nothing(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    m, large = await two_skus(http, seller)
    product = await product_of(http, seller)
    before = await stock_of(http, product)
    r = await http.post(
        "/api/rooms", headers=seller.headers, json={"shop_id": seller.shop.id, "title": "Drop"}
    )
    room_id = r.json()["room"]["id"]
    assert (await make(http, seller, code="ROOM", room_id=room_id)).status_code == 201
    assert (await make(http, seller, code="BIG", min_spend=10_000)).status_code == 201
    assert (await make(http, seller, code="EUROS", kind="fixed", currency="EUR")).status_code == 201
    assert (await make(http, seller, code="OTHER", products=[10**6])).status_code == 422
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": large, "qty": 1}]

    async def refused(code: str, status: int, error: str) -> dict[str, Any]:
        r = await cart_checkout(http, buyer, items=items, voucher=code)
        details: dict[str, Any] = assert_error(r, status, error).get("details", {})
        return details

    assert await refused("ROOM", 409, "voucher_not_claimed") == {"room_id": room_id}
    assert (await refused("BIG", 409, "voucher_min_spend"))["min_spend"] == 10_000
    await refused("EUROS", 409, "voucher_not_applicable")
    await refused("NOPE", 404, "voucher_not_found")
    await refused("lower", 422, "invalid_request")
    details = await refused("BIG", 409, "voucher_min_spend")
    assert details["spend"] == LARGE_PRICE
    assert await stock_of(http, product) == before  # nothing held by any of them

    # Claimed in the live room, it is redeemed; a total other than the discounted one is
    # refused with the new amounts.
    assert (await http.post(f"/api/rooms/{room_id}/live", headers=seller.headers)).is_success
    assert (await claim(http, seller, buyer, "ROOM")).status_code == 201
    r = await cart_checkout(http, buyer, items=items, voucher="ROOM", expected_total=LARGE_PRICE)
    changed = assert_error(r, 409, "quote_changed")["details"]
    assert (changed["total"], changed["voucher"]) == (LARGE_PRICE - 250, "ROOM")
    r = await cart_checkout(http, buyer, items=items, voucher="ROOM", expected_total=2250)
    assert (r.status_code, r.json()["hold"]["voucher"]) == (201, "ROOM")
    assert m  # the other SKU stays untouched


async def test_a_checkout_storm_redeems_exactly_the_budget(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    _, large = await two_skus(http, seller, stock=(5, 400))
    assert (await make(http, seller, code="FIFTY", budget=50)).status_code == 201
    buyers = [viewer_headers(sessions)[1] for _ in range(200)]
    items = [{"sku_id": large, "qty": 1}]

    async def one(buyer: Headers) -> tuple[int, str]:
        r = await cart_checkout(http, buyer, items=items, voucher="FIFTY")
        if r.status_code == 201:
            return 201, r.json()["hold"]["voucher"]
        return r.status_code, r.json()["error"]["code"]

    outcomes = Counter(await asyncio.gather(*(one(b) for b in buyers)))
    assert outcomes == {(201, "FIFTY"): 50, (409, "voucher_exhausted"): 150}
    listed = (await http.get(f"/api/shops/{seller.shop.id}/vouchers")).json()["vouchers"]
    assert [v["left"] for v in listed] == [0]


async def test_writes_lost_between_sql_and_the_shelf_are_made_good(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    redis: Redis,
    keys: Keyspace,
) -> None:
    """Each write that commits in SQL and then tells the shelf can lose the second step to a
    crash. A voucher never loaded is loaded by the first checkout naming it; a shipping rule
    never pushed by the first checkout; one pushed and then changed in SQL alone by the order
    sweep's resync."""
    _, large = await two_skus(http, seller)
    shop_id = seller.shop.id or 0
    shelf_keys = keys.shelf(shop_id)
    assert (await make(http, seller, code="LOST", kind="fixed", value=200)).status_code == 201
    await set_shipping(http, seller, kind="flat", fee=300)
    # Both pushes lost: as if the process died after each SQL commit.
    await redis.delete(shelf_keys.vouchers, shelf_keys.claims)
    await redis.hdel(shelf_keys.stock, "shipping")
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": large, "qty": 1}]
    r = await cart_checkout(http, buyer, items=items, voucher="LOST", shop_id=shop_id)
    assert r.status_code == 201, r.text
    assert (r.json()["hold"]["voucher"], r.json()["total"]) == ("LOST", 2500 - 200 + 300)

    # The rule changed in SQL, its push lost: checkouts charge the old fee until the sweep.
    # The test server's worker runs the same sweep on its timer, so it may come first: then
    # this call finds nothing left to push. Either way the next checkout has the new fee.
    async with db.session() as session:
        await session.exec(update(Shop).where(col(Shop.id) == shop_id).values(shipping_fee=100))
        await session.commit()
    stale = (await cart_checkout(http, buyer, items=items)).json()["total"]
    assert stale in (2500 + 300, 2500 + 100)
    await resync_shelves(redis, keys, db)
    assert (await cart_checkout(http, buyer, items=items)).json()["total"] == 2500 + 100


async def test_a_lapsed_hold_gives_its_voucher_use_back(
    http: httpx.AsyncClient,
    tight_server: Server,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """A hold that lapses unpaid (two-second holds on this node) gives the use it redeemed back
    with its units: the buyer's one use is there for the next checkout."""
    _, large = await two_skus(http, seller)
    assert (await make(http, seller, code="ONCE", kind="fixed", value=500)).status_code == 201
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": large, "qty": 1}]
    async with httpx.AsyncClient(base_url=tight_server.base_url, timeout=30) as tight:
        first = await cart_checkout(tight, buyer, items=items, voucher="ONCE")
        assert first.status_code == 201, first.text
        assert_error(
            await cart_checkout(tight, buyer, items=items, voucher="ONCE"), 409, "voucher_used"
        )
        hold_id = first.json()["hold"]["id"]

        async def state() -> str:
            found: str = (await tight.get(f"/api/holds/{hold_id}", headers=buyer)).json()["hold"][
                "state"
            ]
            return found

        assert await poll(state, lambda s: s == "expired", within_s=30) == "expired"
        again = await cart_checkout(tight, buyer, items=items, voucher="ONCE")
        assert again.status_code == 201, again.text
        assert again.json()["total"] == 2500 - 500
