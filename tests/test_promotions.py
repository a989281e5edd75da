"""Promotions over HTTP against the running server (decision 0028): a product discount and a
bundle price a cart before its voucher, in the cart and in the hold; the order records each
line's discount and the voucher's part; a voucher's minimum spend counts what is left after
promotions; ending a promotion prices the next checkout at once; a push to the shelf lost after
SQL committed is made good, by the next checkout or the sweep's resync; bad terms are refused
and change nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col

from checkout import pricing, promotions
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.models import Promotion
from checkout.shelf import ShelfStore
from checkout.shelving import Shelving
from kernel.clock import now_ms
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    LIST_PRICE,
    assert_error,
    checkout,
    make_seller,
    orders_seen_by,
    poll,
    resync_shelves,
)
from tests.test_cart import cart_checkout, line, put, sku_row, two_skus
from tests.test_vouchers import make
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

HOUR_MS = 3_600_000
MUG_PRICE = 1500


async def promote(http: httpx.AsyncClient, seller: SellerAccount, **terms: Any) -> httpx.Response:
    body = {"ends_ms": int(time.time() * 1000) + HOUR_MS, **terms}
    return await http.post(
        f"/api/shops/{seller.shop.id}/promotions", headers=seller.headers, json=body
    )


async def mug(http: httpx.AsyncClient, seller: SellerAccount) -> tuple[int, int]:
    """A second product (its id, and its one SKU's) at 15.00."""
    r = await http.post(
        f"/api/shops/{seller.shop.id}/products", headers=seller.headers, json={"title": "Mug"}
    )
    product_id = r.json()["product"]["id"]
    r = await http.post(
        f"/api/products/{product_id}/skus",
        headers=seller.headers,
        json={"variant": "Sand", "list_price": MUG_PRICE, "currency": "USD", "stock": 20},
    )
    assert r.status_code == 201, r.text
    return product_id, r.json()["sku"]["id"]


async def product_of_sku(db: Database, sku_id: int) -> int:
    return (await sku_row(db, sku_id)).product_id


async def test_discounts_and_bundles_price_the_cart_before_the_voucher(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    jacket_m, _ = await two_skus(http, seller)
    jacket = await product_of_sku(db, jacket_m)
    mug_product, mug_sku = await mug(http, seller)
    r = await promote(http, seller, kind="discount", products=[jacket], bps=2000)
    assert r.status_code == 201, r.text
    r = await promote(
        http, seller, kind="bundle", products=[mug_product], size=2, price=2500, currency="USD"
    )
    assert r.status_code == 201, r.text
    listed = (await http.get(f"/api/shops/{seller.shop.id}/promotions")).json()["promotions"]
    assert [(p["kind"], p["bps"], p["size"]) for p in listed] == [
        ("discount", 2000, None),
        ("bundle", None, 2),
    ]
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, jacket_m, 1)
    r = await put(http, buyer, mug_sku, 3)
    (shop,) = r.json()["cart"]["shops"]
    # 99.00 less 20 % = 79.20; three mugs: two for 25.00 and one at 15.00 = 40.00.
    subtotal = LIST_PRICE + 3 * MUG_PRICE
    assert (shop["subtotal"], shop["discount"], shop["voucher"]) == (subtotal, 1980 + 500, None)
    assert shop["total"] == 7920 + 4000

    # A voucher's minimum spend counts the goods after promotions: 119.20 < 120.00.
    assert (await make(http, seller, code="MIN120", min_spend=12000)).status_code == 201
    refused = await cart_checkout(http, buyer, voucher="MIN120")
    details = assert_error(refused, 409, "voucher_min_spend")["details"]
    assert (details["spend"], details["min_spend"]) == (11920, 12000)
    listed = (await http.get(f"/api/shops/{seller.shop.id}/vouchers")).json()["vouchers"]
    assert [v["left"] for v in listed] == [100]  # no use spent on the refusal

    assert (await make(http, seller, code="TEN")).status_code == 201
    r = await cart_checkout(http, buyer, voucher="TEN", expected_total=10728)
    assert r.status_code == 201, r.text
    hold = r.json()["hold"]
    # 10 % of 119.20 = 11.92, split 7.92 / 4.00 over what the lines cost after promotions.
    assert hold["lines"] == [
        line(jacket_m, 1, LIST_PRICE, 1980 + 792),
        line(mug_sku, 3, MUG_PRICE, 500 + 400),
    ]
    assert (hold["discount"], hold["voucher_discount"], hold["total"]) == (3672, 1192, 10728)
    paid = await checkout(http, hold["id"], buyer, key="promo-1")
    assert paid.status_code == 201, paid.text
    (order,) = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert (order["discount"], order["voucher_discount"], order["voucher"]) == (3672, 1192, "TEN")
    assert order["total"] == 10728


async def test_an_ended_or_lost_promotion_prices_the_next_checkout(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    keys: Keyspace,
    db: Database,
) -> None:
    jacket_m, _ = await two_skus(http, seller)
    jacket = await product_of_sku(db, jacket_m)
    made = (await promote(http, seller, kind="discount", products=[jacket], bps=1000)).json()
    # The push lost after SQL committed: the first checkout pushes it.
    await redis.hdel(keys.shelf(seller.shop.id or 0).stock, "promos")
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": jacket_m, "qty": 1}]
    first = await cart_checkout(http, buyer, items=items, shop_id=seller.shop.id)
    assert first.json()["total"] == LIST_PRICE - 990
    # Ended: the very next checkout (within the second this node remembers terms) is at full
    # price, because the hold refuses terms priced with promotions the shelf no longer has.
    ended = await http.post(
        f"/api/shops/{seller.shop.id}/promotions/{made['promotion']['id']}/end",
        headers=seller.headers,
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["promotion"]["ends_ms"] <= int(time.time() * 1000)
    again = await cart_checkout(http, buyer, items=items, shop_id=seller.shop.id)
    assert again.json()["total"] == LIST_PRICE


async def test_bad_promotions_are_refused_and_change_nothing(
    http: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    jacket_m, _ = await two_skus(http, seller)
    jacket = await product_of_sku(db, jacket_m)
    for bad, field in [
        ({"kind": "discount", "products": [jacket]}, "bps"),
        ({"kind": "bundle", "products": [jacket], "size": 2}, "price"),
        ({"kind": "bundle", "products": [jacket], "size": 2, "price": 100}, "currency"),
        ({"kind": "discount", "products": [10**8], "bps": 100}, "products"),
        ({"kind": "discount", "products": [jacket], "bps": 100, "ends_ms": 1}, "ends_ms"),
    ]:
        r = await promote(http, seller, **bad)
        assert assert_error(r, 422, "invalid_promotion")["details"]["field"] == field, bad
    assert_error(
        await promote(http, seller, kind="discount", products=[jacket], bps=10_000),
        422,
        "invalid_request",
    )
    rival = await make_seller(db, "Rival")
    r = await http.post(
        f"/api/shops/{seller.shop.id}/promotions",
        headers=rival.headers,
        json={"kind": "discount", "products": [jacket], "bps": 100, "ends_ms": 2 * 10**12},
    )
    assert_error(r, 404, "shop_not_found")
    r = await http.post(
        f"/api/shops/{seller.shop.id}/promotions/999999/end", headers=seller.headers
    )
    assert_error(r, 404, "promotion_not_found")
    assert (await http.get(f"/api/shops/{seller.shop.id}/promotions")).json()["promotions"] == []


async def test_a_promotion_changed_in_sql_alone_is_mended_by_the_sweep(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    keys: Keyspace,
    private_holds: HoldStore,
    private_keys: Keyspace,
    db: Database,
) -> None:
    """A promotion ended in SQL whose push to the shelf was lost keeps pricing checkouts until
    the order sweep's resync pushes SQL's promotions again. The resync is run by hand on a
    shelf no server sweeps (so that it, not a server's pass, is what mends it there), and the
    running server's own sweep is waited for on its shelf."""
    jacket_m, _ = await two_skus(http, seller)
    jacket = await product_of_sku(db, jacket_m)
    made = (await promote(http, seller, kind="discount", products=[jacket], bps=1000)).json()
    private = Shelving(private_holds.shelf)
    async with db.session() as session:
        await private.publish(session, [jacket_m])
        pushed = await private.publish_promotions(session, seller.shop.id)
    # Listed as a fill listing it would (its units stay on the server's shelf: SQL's books
    # are not touched by this copy).
    await redis.sadd(private_keys.shelves, str(seller.shop.id))
    assert pushed != ""
    async with db.session() as session:
        await session.exec(
            update(Promotion)
            .where(col(Promotion.id) == made["promotion"]["id"])
            .values(ends_ms=int(time.time() * 1000))
        )
        await session.commit()
    async with db.session() as session:
        now_in_sql = await promotions.encoded_for(session, seller.shop.id, now_ms())
    assert now_in_sql != pushed
    assert await private_holds.shelf.promotions(seller.shop.id) == pushed  # nothing mends alone
    assert await resync_shelves(redis, private_keys, db) >= 1
    assert await private_holds.shelf.promotions(seller.shop.id) == now_in_sql
    # The server's shelf: its order sweep (every LIVECART_MONEY_INTERVAL_S) pushes SQL's again.
    # A shelf is swept once it has been sold from (a checkout put the shop's units there).
    _, buyer = viewer_headers(sessions)
    items = [{"sku_id": jacket_m, "qty": 1}]
    assert (await cart_checkout(http, buyer, items=items)).status_code == 201
    served = ShelfStore(redis, keys, hold_ttl_ms=60_000, pay_ttl_ms=60_000)
    mended = await poll(
        lambda: served.promotions(seller.shop.id), lambda p: p == now_in_sql, within_s=60
    )
    assert mended == now_in_sql
    assert (await cart_checkout(http, buyer, items=items)).json()["total"] == LIST_PRICE


def test_pages_show_each_products_best_running_discount_and_its_bundles() -> None:
    """What the storefront shows (promotions.shown), from the shelf's text: only promotions
    running at ``now``, the best of two discounts, bundles in their own currency; and the
    shown price is what pricing charges for one unit."""
    now = 1_000_000
    rows = [
        # id, kind, products, bps, size, price, currency, starts, ends
        [1, "discount", [10, 11], 1000, 0, 0, "", now - 5, now + 5],
        [2, "discount", [10], 1500, 0, 0, "", now - 5, now + 5],
        [3, "discount", [12], 5000, 0, 0, "", now + 1, now + 5],  # not yet
        [4, "bundle", [11, 13], 0, 2, 3000, "EUR", now - 5, now + 5],
        [5, "bundle", [13], 0, 3, 4000, "USD", now - 5, now],  # just ended
    ]
    shown = promotions.shown(orjson.dumps(rows).decode(), now)
    assert shown == {
        10: promotions.Shown(1500),
        11: promotions.Shown(1000, ((2, 3000, "EUR"),)),
        13: promotions.Shown(0, ((2, 3000, "EUR"),)),
    }
    one = pricing.Line(sku_id=1, product_id=10, unit_price=8900, qty=1)
    quoted = pricing.quote([one], discounts=[pricing.ProductDiscount(10, 1500)])
    assert pricing.discounted(8900, shown[10].bps) == quoted.total == 7565
