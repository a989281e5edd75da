"""Carts over HTTP against the running server (decision 0028): a cart of several SKUs of one
shop is held all or nothing from the shop's shelf, paid once and persisted as one order with a
line per SKU; the shelf takes its units from the SKU's free stock and gives them back to a deal
that needs them; refusals hold nothing; racing carts never oversell."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col, select

from catalog.models import Sku
from checkout.keys import Keyspace
from checkout.models import ShelfMove
from checkout.shelf_audit import audit_shelf
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    CARD_OK,
    LIST_PRICE,
    Headers,
    assert_error,
    checkout,
    deal_body,
    make_seller,
    new_product,
    new_sku,
    orders_seen_by,
    poll,
    resync_shelves,
)
from tests.test_seller_pages import sign_in
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def put(http: httpx.AsyncClient, buyer: Headers, sku_id: int, qty: int) -> httpx.Response:
    return await http.put(f"/api/cart/items/{sku_id}", headers=buyer, json={"qty": qty})


async def cart_checkout(http: httpx.AsyncClient, buyer: Headers, **body: Any) -> httpx.Response:
    return await http.post("/api/cart/checkout", headers=buyer, json=body)


async def two_skus(
    http: httpx.AsyncClient, seller: SellerAccount, stock: tuple[int, int] = (5, 3)
) -> tuple[int, int]:
    product = await new_product(http, seller)
    first = await new_sku(http, seller, product["id"], stock=stock[0])
    r = await http.post(
        f"/api/products/{product['id']}/skus",
        headers=seller.headers,
        json={"variant": "L", "list_price": 2500, "currency": "USD", "stock": stock[1]},
    )
    assert r.status_code == 201, r.text
    return first["id"], r.json()["sku"]["id"]


async def sku_row(db: Database, sku_id: int) -> Sku:
    async with db.session() as session:
        found = await session.get(Sku, sku_id)
    assert found is not None
    return found


def line(sku_id: int, qty: int, unit_price: int, discount: int = 0) -> dict[str, int]:
    """A held or ordered line as the API shows it."""
    return {
        "sku_id": sku_id,
        "qty": qty,
        "unit_price": unit_price,
        "discount": discount,
        "total": qty * unit_price - discount,
    }


async def test_a_cart_of_two_skus_is_held_paid_once_and_ordered_with_both_lines(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    m, large = await two_skus(http, seller)
    _, buyer = viewer_headers(sessions)
    assert (await put(http, buyer, m, 2)).status_code == 200
    r = await put(http, buyer, large, 1)
    assert r.status_code == 200, r.text
    cart = r.json()["cart"]
    assert [(line["sku_id"], line["qty"]) for line in cart["lines"]] == [(m, 2), (large, 1)]
    expected = 2 * LIST_PRICE + 2500
    assert cart["shops"] == [
        {
            "shop_id": seller.shop.id,
            "currency": "USD",
            "subtotal": expected,
            "discount": 0,
            "voucher_discount": 0,
            "shipping_fee": 0,
            "shipping_discount": 0,
            "voucher": None,
            "total": expected,
        }
    ]

    r = await cart_checkout(http, buyer, request_id="c1", expected_total=expected)
    assert r.status_code == 201, r.text
    held = r.json()
    assert (held["total"], held["currency"], held["hold"]["qty"]) == (expected, "USD", 3)
    assert held["hold"]["id"].startswith(f"s{seller.shop.id}-")
    again = await cart_checkout(http, buyer, request_id="c1")
    assert (again.status_code, again.json()["hold"]["id"]) == (200, held["hold"]["id"])

    paid = await checkout(http, held["hold"]["id"], buyer, key="pay")
    assert paid.status_code == 201, paid.text
    order = paid.json()["order"]
    assert (order["amount"], order["qty"]) == (expected, 3)
    assert order["lines"] == [line(m, 2, LIST_PRICE), line(large, 1, 2500)]
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    (stored,) = orders
    assert (stored["deal_id"], stored["total"], stored["quantity"]) == (None, expected, 3)
    # The buyer's list says what each line is, too.
    keys = ("sku_id", "qty", "unit_price", "discount", "total")
    assert [{k: line[k] for k in keys} for line in stored["lines"]] == (order["lines"])
    assert [(line["title"], line["variant"]) for line in stored["lines"]] == [
        ("Jacket", "M"),
        ("Jacket", "L"),
    ]
    # The jacket has no picture: a line leaves "image" out rather than send null (the
    # document says a string when present; schemathesis found a null once).
    assert all(line.get("image", "") is not None for line in stored["lines"])
    for sku_id, left in ((m, 3), (large, 2)):
        row = await sku_row(db, sku_id)
        # Sold units left stock and the shelf; the rest of the stock is still on the shelf.
        assert (row.stock, row.allocated, row.shelved) == (left, 0, left)
    r = await http.get("/api/cart", headers=buyer)
    assert r.json()["cart"]["lines"] == []  # bought items left the cart
    # The seller center lists what to ship: both lines, each with its units.
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as browser_like:
        await sign_in(browser_like, seller.token)
        center = (await browser_like.get("/seller")).text
    row = center[center.index(f'id="order-{stored["id"]}"') :]
    row = row[: row.index("</tr>")]
    times = "\N{MULTIPLICATION SIGN}"
    assert f"<li>Jacket · M {times} 2</li>" in row and f"<li>Jacket · L {times} 1</li>" in row


async def test_a_cart_wanting_more_than_there_is_holds_nothing(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    m, large = await two_skus(http, seller, stock=(5, 3))
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, m, 2)
    await put(http, buyer, large, 4)
    r = await cart_checkout(http, buyer)
    body = assert_error(r, 409, "insufficient_stock")["details"]
    assert body["lines"] == [{"sku_id": large, "wanted": 4, "available": 3}]
    _, other = viewer_headers(sessions)
    await put(http, other, m, 5)
    await put(http, other, large, 3)
    r = await cart_checkout(http, other)  # all of both: nothing of the refused cart was held
    assert r.status_code == 201, r.text


async def test_refused_checkouts_say_why(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    m, _ = await two_skus(http, seller)
    _, buyer = viewer_headers(sessions)
    assert_error(await cart_checkout(http, buyer), 409, "cart_empty")
    assert_error(await put(http, buyer, m, 100), 422, "invalid_request")
    assert_error(await put(http, buyer, 10**9, 1), 404, "sku_not_found")
    await put(http, buyer, m, 1)
    body = assert_error(await cart_checkout(http, buyer, expected_total=1), 409, "quote_changed")[
        "details"
    ]
    assert body["total"] == LIST_PRICE
    assert_error(await cart_checkout(http, buyer, total=1), 422, "unknown_field")

    rival = await make_seller(db, "Another Shop")
    other_product = await new_product(http, rival)
    other = await new_sku(http, rival, other_product["id"], stock=2)
    await put(http, buyer, other["id"], 1)
    # Buy now is one shop's items (a whole cart across shops: tests/test_cart_shops.py).
    items = [{"sku_id": m, "qty": 1}, {"sku_id": other["id"], "qty": 1}]
    spans = await cart_checkout(http, buyer, items=items)
    body = assert_error(spans, 409, "cart_spans_shops")["details"]
    assert body["shop_ids"] == sorted([seller.shop.id, rival.shop.id])
    r = await cart_checkout(http, buyer, shop_id=rival.shop.id)
    assert r.status_code == 201, r.text
    assert [line["sku_id"] for line in r.json()["hold"]["lines"]] == [other["id"]]


async def test_a_deal_takes_its_units_back_from_the_shelf_but_never_held_ones(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    product = await new_product(http, seller)
    sku = (await new_sku(http, seller, product["id"], stock=5))["id"]
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, sku, 2)
    assert (await cart_checkout(http, buyer)).status_code == 201  # all 5 shelved, 2 held
    assert (await sku_row(db, sku)).shelved == 5

    too_many = await http.post(
        "/api/deals", headers=seller.headers, json=deal_body(sku, quantity=4, per_buyer_limit=1)
    )
    assert too_many.status_code == 201, too_many.text
    r = await http.post(f"/api/deals/{too_many.json()['deal']['id']}/start", headers=seller.headers)
    assert_error(r, 409, "stock_unavailable")  # 2 of the 5 are in a buyer's hold
    row = await sku_row(db, sku)
    assert (row.allocated, row.shelved) == (0, 5)  # the refused take moved nothing

    fits = await http.post(
        "/api/deals", headers=seller.headers, json=deal_body(sku, quantity=3, per_buyer_limit=1)
    )
    r = await http.post(f"/api/deals/{fits.json()['deal']['id']}/start", headers=seller.headers)
    assert r.status_code == 200, r.text
    row = await sku_row(db, sku)
    assert (row.stock, row.allocated, row.shelved) == (5, 3, 2)
    async with db.session() as session:
        moves = (await session.exec(select(ShelfMove).where(col(ShelfMove.sku_id) == sku))).all()
    assert sorted((m.units, m.status) for m in moves) == [(-4, "short"), (-3, "done"), (5, "done")]

    _, late = viewer_headers(sessions)
    await put(http, late, sku, 1)
    assert_error(await cart_checkout(http, late), 409, "insufficient_stock")  # 2 held, 0 free


async def test_lowering_the_stock_takes_shelf_units_but_not_held_ones(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    product = await new_product(http, seller)
    sku = (await new_sku(http, seller, product["id"], stock=6))["id"]
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, sku, 2)
    assert (await cart_checkout(http, buyer)).status_code == 201
    r = await http.patch(f"/api/skus/{sku}", headers=seller.headers, json={"stock": 3})
    assert r.status_code == 200, r.text
    row = await sku_row(db, sku)
    assert (row.stock, row.shelved) == (3, 3)
    r = await http.patch(f"/api/skus/{sku}", headers=seller.headers, json={"stock": 1})
    assert_error(r, 409, "stock_allocated")  # two are in a buyer's hold
    assert (await sku_row(db, sku)).stock == 3


async def test_cancelling_a_cart_order_gives_each_line_its_units_back(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    m, large = await two_skus(http, seller, stock=(5, 3))
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, m, 2)
    await put(http, buyer, large, 3)
    held = (await cart_checkout(http, buyer)).json()["hold"]
    assert (await checkout(http, held["id"], buyer, key="k", card=CARD_OK)).status_code == 201
    (order,) = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    r = await http.post(f"/api/orders/{order['id']}/cancel", headers=seller.headers, json={})
    assert r.status_code == 200, r.text
    assert r.json()["order"]["restocked_units"] == 5
    # Back to free stock (the shelf keeps what it still had: m's 3 unsold units).
    for sku_id, stock, free in ((m, 5, 2), (large, 3, 3)):
        row = await sku_row(db, sku_id)
        assert (row.stock, row.stock - row.allocated - row.shelved) == (stock, free)


async def test_buy_now_holds_the_items_named_and_the_stock_endpoint_counts_the_shelf(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    m, large = await two_skus(http, seller, stock=(5, 3))
    product_id = (await http.get("/api/products", params={"shop_id": seller.shop.id})).json()[
        "products"
    ][0]["id"]
    r = await http.get("/api/stock", params={"product_id": product_id})
    assert r.json()["stock"] == {str(m): 5, str(large): 3}
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, large, 1)  # in the cart, not bought now
    items = [{"sku_id": m, "qty": 1}, {"sku_id": m, "qty": 1}]
    r = await cart_checkout(http, buyer, items=items)
    assert r.status_code == 201, r.text
    assert r.json()["hold"]["lines"] == [line(m, 2, LIST_PRICE)]
    r = await http.get("/api/stock", params={"product_id": product_id})
    assert r.json()["stock"] == {str(m): 3, str(large): 3}  # the held two are not for sale
    assert_error(await http.get("/api/stock", params={"product_id": "x"}), 422, "invalid_request")
    r = await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 0}])
    assert_error(r, 422, "invalid_request")
    # Naming the shop (the bag's cards carry it) takes the one-call path; another shop's id
    # finds nothing of its own to hold.
    r = await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}], shop_id=seller.shop.id)
    assert r.status_code == 201, r.text
    assert r.json()["hold"]["lines"] == [line(m, 1, LIST_PRICE)]
    r = await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}], shop_id=10**6)
    assert_error(r, 409, "cart_empty")


async def one_total(http: httpx.AsyncClient, buyer: Headers, sku_id: int) -> int:
    r = await cart_checkout(http, buyer, items=[{"sku_id": sku_id, "qty": 1}])
    assert r.status_code == 201, r.text
    total: int = r.json()["total"]
    return total


async def test_holds_price_at_sqls_price_pushed_on_every_edit_and_mended_by_the_sweep(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    redis: Redis,
    keys: Keyspace,
) -> None:
    m, _ = await two_skus(http, seller)
    _, buyer = viewer_headers(sessions)
    assert await one_total(http, buyer, m) == LIST_PRICE
    # The seller's edit reaches the shelf with the answer: the next hold is at the new price,
    # and a buyer who was shown the old total is told, with nothing held.
    r = await http.patch(f"/api/skus/{m}", headers=seller.headers, json={"list_price": 7000})
    assert r.status_code == 200, r.text
    body = {"items": [{"sku_id": m, "qty": 1}], "expected_total": LIST_PRICE}
    details = assert_error(
        await http.post("/api/cart/checkout", headers=buyer, json=body), 409, "quote_changed"
    )["details"]
    assert (details["total"], details["lines"]) == (
        7000,
        [line(m, 1, 7000)],
    )
    assert (await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}])).json()[
        "total"
    ] == 7000
    # An archived product is off sale at once.
    product_id = (await http.get("/api/products", params={"shop_id": seller.shop.id})).json()[
        "products"
    ][0]["id"]
    archived = await http.post(f"/api/products/{product_id}/archive", headers=seller.headers)
    assert archived.status_code == 200, archived.text
    r = await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}])
    assert assert_error(r, 409, "insufficient_stock")["details"]["lines"] == [
        {"sku_id": m, "wanted": 1, "available": 0}
    ]
    unarchived = await http.post(f"/api/products/{product_id}/unarchive", headers=seller.headers)
    assert unarchived.status_code == 200, unarchived.text
    # A push lost after SQL committed (a crash between the two): the audit sees it, the order
    # sweep's pass mends it.
    async with db.session() as session:
        await session.exec(update(Sku).where(col(Sku.id) == m).values(list_price=6500))
        await session.commit()
    # The server's own order sweep runs its resync beside this test (every pass) and may mend
    # the shelf before we look (it did once in CI's one-process storage step): until then the
    # shelf charges the old price and the audit names the SKU; after, neither.
    shop_id = seller.shop.id or 0
    before = (await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}])).json()["total"]
    assert before in (7000, 6500)
    assert (await audit_shelf(redis, db, keys, shop_id)).terms_mismatch in ([m], [])
    await resync_shelves(redis, keys, db)  # this pass, or the sweep's before it, mends it
    assert (await audit_shelf(redis, db, keys, shop_id)).terms_mismatch == []
    assert (await cart_checkout(http, buyer, items=[{"sku_id": m, "qty": 1}])).json()[
        "total"
    ] == 6500


async def test_a_sku_sold_at_list_price_cannot_be_deleted_its_orders_keep_it(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    """Its order lines and the shelf's moves point at it: 409 sku_in_use, not a 500 from the
    database's foreign keys (schemathesis found it), and the SKU is still there."""
    m, large = await two_skus(http, seller, stock=(5, 3))
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, m, 1)
    held = (await cart_checkout(http, buyer)).json()["hold"]
    assert (await checkout(http, held["id"], buyer, key="k", card=CARD_OK)).status_code == 201
    await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    refused = await http.delete(f"/api/skus/{m}", headers=seller.headers)
    assert_error(refused, 409, "sku_in_use")
    assert (await http.patch(f"/api/skus/{m}", headers=seller.headers, json={})).status_code == 200
    # A SKU never sold nor shelved still goes.
    assert (await http.delete(f"/api/skus/{large}", headers=seller.headers)).status_code == 204
