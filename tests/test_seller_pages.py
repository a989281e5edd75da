"""The seller's pages over plain HTTP against a running ``livecart serve``: signing in with the
token, the cookie standing in for the token on the JSON API, CSRF on every change, sign-out by
token rotation, and the seller center's forms refusing bad input without changing anything.
(The browser tests in test_pages.py drive the same pages through Chromium.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from catalog import service
from catalog.models import Seller
from kernel.db import Database
from people.auth_stamps import AuthStamps
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import assert_error, http_live_deal, make_seller, pay_and_wait_for_order, reserve
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def browser_like(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a cookie jar, as a browser has, and no bearer token."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def login_form_csrf(page: str) -> str:
    """The sign-in page's CSRF token (its two forms, token and e-mail, carry the same)."""
    found = set(CSRF.findall(page))
    assert len(found) == 1, found
    return found.pop()


async def sign_in(client: httpx.AsyncClient, token: str, next_path: str = "/seller") -> str:
    """Sign in through the form; return the seller center's CSRF token."""
    form = await client.get("/seller/login", params={"next": next_path})
    assert form.status_code == 200
    login_csrf = login_form_csrf(form.text)
    r = await client.post(
        "/seller/login", data={"csrf": login_csrf, "token": token, "next": next_path}
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == next_path
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    center = await client.get("/seller")
    assert center.status_code == 200
    return CSRF.findall(center.text)[0]


async def test_signing_in_lets_the_cookie_stand_for_the_token_with_csrf_on_changes(
    browser_like: httpx.AsyncClient, seller: SellerAccount
) -> None:
    assert (await browser_like.get("/seller")).headers["location"] == "/seller/login?next=/seller"
    csrf = await sign_in(browser_like, seller.token)
    room = {"shop_id": seller.shop.id, "title": "Cookie room"}
    refused = await browser_like.post("/api/rooms", json=room)
    assert_error(refused, 403, "csrf_failed")
    assert_error(
        await browser_like.post("/api/rooms", json=room, headers={"X-CSRF-Token": "0" * 32}),
        403,
        "csrf_failed",
    )
    made = await browser_like.post("/api/rooms", json=room, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    room_id = made.json()["room"]["id"]
    figures = await browser_like.get(f"/api/rooms/{room_id}/figures")  # reads need no token
    assert figures.status_code == 200
    assert figures.json()["figures"]["orders"] == 0
    studio = await browser_like.get(f"/studio/{room_id}")
    assert studio.status_code == 200 and "lc_st_" in studio.text  # the websocket's ticket
    for forged in ("é" * 16, "\u00ff", ""):  # bytes a browser will not send, a forger may
        r = await browser_like.post(
            "/api/rooms", json=room, headers={"X-CSRF-Token": forged.encode()}
        )
        assert_error(r, 403, "csrf_failed")


async def test_a_studio_ticket_opens_its_own_room_only(
    browser_like: httpx.AsyncClient, server: Server, seller: SellerAccount
) -> None:
    csrf = await sign_in(browser_like, seller.token)
    made = [
        (
            await browser_like.post(
                "/api/rooms",
                json={"shop_id": seller.shop.id, "title": f"Room {n}"},
                headers={"X-CSRF-Token": csrf},
            )
        ).json()["room"]["id"]
        for n in (1, 2)
    ]
    page = await browser_like.get(f"/studio/{made[0]}")
    (ticket,) = re.findall(r'"ticket": ?"(lc_st_[^"]+)"', page.text.replace("\\u0022", '"'))
    own = await WsViewer.open(server.base_url, made[0])
    assert (await own.hello(ticket))["role"] == "creator"
    other = await WsViewer.open(server.base_url, made[1])
    await other.send(type="hello", token=ticket)
    assert (await other.next("error"))["code"] == "invalid_token"
    await own.close()
    await other.close()


async def test_a_bad_token_or_a_forged_form_does_not_sign_in(
    browser_like: httpx.AsyncClient, seller: SellerAccount
) -> None:
    form = await browser_like.get("/seller/login")
    login_csrf = login_form_csrf(form.text)
    wrong = await browser_like.post("/seller/login", data={"csrf": login_csrf, "token": "lc_sk_x"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    forged = await browser_like.post("/seller/login", data={"csrf": "guess", "token": seller.token})
    assert forged.status_code == 403
    assert "lc_seller" not in browser_like.cookies
    assert (await browser_like.get("/seller")).status_code == 303


async def test_sign_in_goes_back_to_local_pages_only(
    browser_like: httpx.AsyncClient, seller: SellerAccount
) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        form = await browser_like.get("/seller/login")
        login_csrf = login_form_csrf(form.text)
        r = await browser_like.post(
            "/seller/login", data={"csrf": login_csrf, "token": seller.token, "next": target}
        )
        assert r.headers["location"] == "/seller", target


async def test_rotating_the_token_signs_every_browser_out(
    browser_like: httpx.AsyncClient, seller: SellerAccount, db: Database, auth_stamps: AuthStamps
) -> None:
    await sign_in(browser_like, seller.token)
    assert (await browser_like.get("/api/orders")).status_code == 200  # remembered by the node
    async with db.session() as session:
        me = await session.get(Seller, seller.seller.id)
        assert me is not None
        await service.rotate_token(session, auth_stamps, me)
    assert (await browser_like.get("/seller")).headers["location"].startswith("/seller/login")
    assert_error(await browser_like.get("/api/orders"), 401, "session_expired")


async def test_a_forged_cookie_is_refused(
    browser_like: httpx.AsyncClient, seller: SellerAccount
) -> None:
    browser_like.cookies.set("lc_seller", f"{seller.seller.id}.0000000000000000.x.y")
    assert (await browser_like.get("/seller")).status_code == 303
    assert_error(await browser_like.get("/api/orders"), 401, "session_expired")


async def test_shipping_from_the_seller_center_needs_carrier_and_tracking(
    browser_like: httpx.AsyncClient,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    order_id = paid.order["id"]
    csrf = await sign_in(browser_like, seller.token)
    center = await browser_like.get("/seller")
    assert f'id="order-{order_id}"' in center.text

    ship = f"/seller/orders/{order_id}/ship"
    no_csrf = await browser_like.post(ship, data={"carrier": "UPS", "tracking_number": "1Z"})
    assert no_csrf.status_code == 403
    missing = await browser_like.post(ship, data={"csrf": csrf, "carrier": "UPS"})
    assert missing.status_code == 422 and "tracking number" in missing.text
    unknown = await browser_like.post(f"/seller/orders/{order_id}/teleport", data={"csrf": csrf})
    assert unknown.status_code == 422
    order = (await http.get(f"/api/orders/{order_id}", headers=seller.headers)).json()["order"]
    assert order["status"] == "paid" and len(order["events"]) == 1  # nothing moved

    shipped = await browser_like.post(
        ship, data={"csrf": csrf, "carrier": "DHL", "tracking_number": "JD0123", "tab": "to_ship"}
    )
    assert (
        shipped.status_code == 303 and shipped.headers["location"] == "/seller?tab=to_ship#orders"
    )
    order = (await http.get(f"/api/orders/{order_id}", headers=seller.headers)).json()["order"]
    assert (order["status"], order["carrier"], order["tracking_number"]) == (
        "shipped",
        "DHL",
        "JD0123",
    )
    assert [(e["from"], e["to"]) for e in order["events"]] == [
        (None, "paid"),
        ("paid", "awaiting_shipment"),
        ("awaiting_shipment", "shipped"),
    ]
    again = await browser_like.post(
        ship, data={"csrf": csrf, "carrier": "DHL", "tracking_number": "X"}
    )
    assert again.status_code == 409  # shipped already: refused, shown, nothing changed
    refunded = await browser_like.post(
        f"/seller/orders/{order_id}/refund",
        data={"csrf": csrf, "confirm": "yes", "refund_key": "k1", "restock": "0"},
    )
    assert refunded.status_code == 303
    buyer_view = (await http.get("/api/orders", headers=paid.buyer)).json()["orders"]
    assert [(o["status"], o["item"]["title"]) for o in buyer_view] == [("refunded", "Jacket")]


async def test_the_product_form_refuses_bad_input_and_adds_good_products(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    csrf = await sign_in(browser_like, seller.token)
    base = {"csrf": csrf, "shop_id": str(seller.shop.id), "title": "Scarf", "currency": "USD"}
    for bad in (
        {"list_price": "12,50", "stock": "3"},
        {"list_price": "12.505", "stock": "3"},
        {"list_price": "12", "stock": "-1"},
        {"list_price": "12", "stock": "3", "image_url": "javascript:alert(1)"},
        {"list_price": "12", "stock": "3", "currency": "usd"},
        {"list_price": "12", "stock": "3", "shop_id": "99999999999999"},
    ):
        r = await browser_like.post("/seller/products", data={**base, **bad})
        assert r.status_code in (404, 422), (bad, r.status_code)
    products = (await http.get("/api/products", params={"shop_id": seller.shop.id})).json()
    assert products["products"] == []
    yen = await browser_like.post(
        "/seller/products",
        data={**base, "title": "Tea", "list_price": "1200", "currency": "JPY", "stock": "1"},
    )
    assert yen.status_code == 303
    (tea,) = (await http.get("/api/products", params={"shop_id": seller.shop.id})).json()[
        "products"
    ]
    tea_skus = (await http.get(f"/api/products/{tea['id']}")).json()["product"]["skus"]
    assert [(s["list_price"], s["currency"]) for s in tea_skus] == [(1200, "JPY")]  # no sen
    sen = await browser_like.post(
        "/seller/products",
        data={**base, "list_price": "1200.5", "currency": "JPY", "stock": "1"},
    )
    assert sen.status_code == 422
    await http.delete(f"/api/skus/{tea_skus[0]['id']}", headers=seller.headers)
    await http.delete(f"/api/products/{tea['id']}", headers=seller.headers)
    good = await browser_like.post(
        "/seller/products",
        data={**base, "list_price": "12.5", "stock": "3", "variant": "Red", "image_url": "/x.png"},
    )
    assert good.status_code == 303
    (product,) = (await http.get("/api/products", params={"shop_id": seller.shop.id})).json()[
        "products"
    ]
    detail = (await http.get(f"/api/products/{product['id']}")).json()["product"]
    assert (detail["title"], detail["image_urls"]) == ("Scarf", ["/x.png"])
    assert [(s["variant"], s["list_price"], s["stock"]) for s in detail["skus"]] == [
        ("Red", 1250, 3)
    ]


async def test_a_malformed_form_is_a_4xx(
    browser_like: httpx.AsyncClient, seller: SellerAccount
) -> None:
    await sign_in(browser_like, seller.token)
    as_json = await browser_like.post("/seller/products", json={"title": "x"})
    assert as_json.status_code == 415

    not_utf8 = await browser_like.post(
        "/seller/products",
        content=b"title=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_utf8.status_code == 400
    browser_like.cookies.set("lc_seller", "expired.or.forged")
    signed_out = await browser_like.post("/seller/products", data={"title": "x"})
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/seller/login")


async def test_storefront_shows_products_and_the_live_banner(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    h = seller.headers
    shop = (await http.get("/api/shops", headers=h)).json()["shops"][0]
    product = (
        await http.post(
            f"/api/shops/{shop['id']}/products", headers=h, json={"title": "Wool <b>hat</b>"}
        )
    ).json()["product"]
    await http.post(
        f"/api/products/{product['id']}/skus",
        headers=h,
        json={"variant": "", "list_price": 1999, "currency": "USD", "stock": 4},
    )
    page = await http.get(f"/shop/{shop['handle']}")
    assert page.status_code == 200 and "live-banner" not in page.text
    assert "Wool &lt;b&gt;hat&lt;/b&gt;" in page.text and "$19.99" in page.text  # escaped
    room = (
        await http.post("/api/rooms", headers=h, json={"shop_id": shop["id"], "title": "Hats"})
    ).json()["room"]
    await http.post(f"/api/rooms/{room['id']}/live", headers=h)
    page = await http.get(f"/shop/{shop['handle']}")
    assert f'href="/live/{room["id"]}"' in page.text and "Live now: Hats" in page.text
    for missing in ("no-such-shop", "%00", "Caps", "x" * 61):
        assert (await http.get(f"/shop/{missing}")).status_code == 404, missing


# --- refunds ask first; refunded orders have their own tab ------------------------------------


async def _order(http: httpx.AsyncClient, seller: SellerAccount, order_id: int) -> dict[str, Any]:
    found: dict[str, Any] = (
        await http.get(f"/api/orders/{order_id}", headers=seller.headers)
    ).json()["order"]
    return found


def _order_ids(page: httpx.Response) -> set[int]:
    return {int(n) for n in re.findall(r'<tr id="order-(\d+)"', page.text)}


async def test_a_refund_asks_first_and_lands_under_refunded(
    browser_like: httpx.AsyncClient,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
) -> None:
    paid = await pay_and_wait_for_order(http, seller, sessions)
    order_id = paid.order["id"]
    csrf = await sign_in(browser_like, seller.token)
    center = await browser_like.get("/seller")
    # The row's Refund button only opens the question (a GET: no form post, no change).
    assert f'action="/seller/orders/{order_id}/refund"' in center.text
    asked = await browser_like.get(f"/seller/orders/{order_id}/refund", params={"tab": "to_ship"})
    assert asked.status_code == 200
    assert "Refund $98.00 to the buyer?" in asked.text and f"#{order_id}" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert f'href="/seller?tab=to_ship#order-{order_id}"' in asked.text  # Keep order
    assert (await _order(http, seller, order_id))["status"] == "paid"

    refund = f"/seller/orders/{order_id}/refund"
    unconfirmed = await browser_like.post(refund, data={"csrf": csrf})
    assert unconfirmed.status_code == 400 and "Refund $98.00 to the buyer?" in unconfirmed.text
    forged = await browser_like.post(refund, data={"confirm": "yes"})
    assert forged.status_code == 403
    assert (await _order(http, seller, order_id))["status"] == "paid"  # nothing moved

    # The page drew the refund's key: posting the form twice (a double click) refunds once.
    key = re.search(r'name="refund_key" value="([^"]+)"', asked.text)
    assert key is not None
    form = {"csrf": csrf, "confirm": "yes", "tab": "all", "refund_key": key[1], "restock": "1"}
    done, twice = [await browser_like.post(refund, data=form) for _ in range(2)]
    assert (done.status_code, done.headers["location"]) == (303, "/seller?tab=all#orders")
    assert twice.status_code == 303
    order = await _order(http, seller, order_id)
    assert (order["refunded"], order["restocked_units"]) == (9800, 1)
    assert (await _order(http, seller, order_id))["status"] == "refunded"
    refunded_tab = await browser_like.get("/seller", params={"tab": "refunded"})
    assert order_id in _order_ids(refunded_tab)
    assert 'id="tab-refunded"' in refunded_tab.text
    assert order_id not in _order_ids(await browser_like.get("/seller?tab=cancelled"))
    # Refunded already: asking again is refused with the reason, and so is cancelling.
    again = await browser_like.get(refund)
    assert again.status_code == 409 and "cannot be moved" in again.text
    assert (await browser_like.get(f"/seller/orders/{order_id}/cancel")).status_code == 409

    other = await make_seller(db)
    await sign_in(browser_like, other.token)
    assert (await browser_like.get(refund)).status_code == 404  # not theirs: no such order
    assert (await browser_like.get(f"/seller/orders/{order_id}/ship")).status_code == 404


# --- the add form and the product editor keep what was typed ----------------------------------


async def _product(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    title: str,
    *,
    price: int = 1250,
    currency: str = "USD",
    stock: int = 10,
) -> tuple[int, int]:
    h = seller.headers
    made = await http.post(
        f"/api/shops/{seller.shop.id}/products", headers=h, json={"title": title}
    )
    product_id = int(made.json()["product"]["id"])
    sku = await http.post(
        f"/api/products/{product_id}/skus",
        headers=h,
        json={"variant": "One", "list_price": price, "currency": currency, "stock": stock},
    )
    return product_id, int(sku.json()["sku"]["id"])


async def _detail(http: httpx.AsyncClient, product_id: int) -> dict[str, Any]:
    found: dict[str, Any] = (await http.get(f"/api/products/{product_id}")).json()["product"]
    return found


async def test_a_refused_new_product_shows_what_was_typed_and_why(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    csrf = await sign_in(browser_like, seller.token)
    typed = {
        "shop_id": str(seller.shop.id),
        "title": "Silk <scarf>",
        "image_url": "/static/img/mug.svg",
        "variant": "Red / L",
        "list_price": "12,50",
        "currency": "EUR",
        "stock": "7",
    }
    r = await browser_like.post("/seller/products", data={"csrf": csrf, **typed})
    assert r.status_code == 422
    for name, value in typed.items():
        if name != "shop_id":
            shown = value.replace("<", "&lt;").replace(">", "&gt;")
            assert f'name="{name}" type="text" value="{shown}"' in r.text, name
    assert f'<option value="{seller.shop.id}" selected>' in r.text
    assert re.search(r'id="product-list_price-error"[^>]*>Prices are written like', r.text)
    assert 'name="list_price" type="text" value="12,50" aria-invalid="true"' in r.text
    bad_currency = await browser_like.post(
        "/seller/products", data={"csrf": csrf, **typed, "list_price": "12.5", "currency": "eur"}
    )
    assert bad_currency.status_code == 422 and 'id="product-currency-error"' in bad_currency.text
    forged = await browser_like.post("/seller/products", data={**typed, "list_price": "12.5"})
    assert forged.status_code == 403 and 'value="Silk &lt;scarf&gt;"' in forged.text
    products = await http.get("/api/products", params={"shop_id": seller.shop.id})
    assert products.json()["products"] == []  # nothing was added


async def test_the_product_editor_sets_options_and_adds_variants(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    made = await http.post(
        f"/api/shops/{seller.shop.id}/products", headers=seller.headers, json={"title": "Tee"}
    )
    product_id = int(made.json()["product"]["id"])
    csrf = await sign_in(browser_like, seller.token)
    edit, add = f"/seller/products/{product_id}", f"/seller/products/{product_id}/skus"
    form = {"csrf": csrf, "title": "Tee", "description": "", "category": ""}
    rows = {
        "option-name-0": "Size",
        "option-values-0": "S, M , L,",
        "option-name-1": "Colour",
        "option-values-1": "Black, Sand",
        "option-name-2": "",
        "option-values-2": "",
    }
    twice = await browser_like.post(edit, data={**form, **rows, "option-values-0": "S, s"})
    assert twice.status_code == 422 and "lists &#39;s&#39; twice" in twice.text, twice.text
    assert 'value="S, s"' in twice.text  # what was typed stays
    empty = await browser_like.post(edit, data={**form, **rows, "option-values-1": " , "})
    assert empty.status_code == 422 and 'id="options-error"' in empty.text
    assert (await _detail(http, product_id))["options"] == []
    saved = await browser_like.post(edit, data={**form, **rows})
    assert saved.status_code == 303, saved.text
    assert (await _detail(http, product_id))["options"] == [
        {"name": "Size", "values": ["S", "M", "L"]},
        {"name": "Colour", "values": ["Black", "Sand"]},
    ]
    page = await browser_like.get(edit)
    assert 'name="option-values-0" value="S, M, L"' in page.text
    assert '<select id="new-value-1" name="value-1">' in page.text

    variant = {"csrf": csrf, "value-0": "M", "value-1": "Sand", "list_price": "19.90"}
    variant |= {"stock": "12", "image_url": "/static/img/mug.svg", "currency": "USD"}
    added = await browser_like.post(add, data=variant)
    assert added.status_code == 303, added.text
    (sku,) = (await _detail(http, product_id))["skus"]
    assert (sku["variant"], sku["list_price"], sku["stock"], sku["image_url"]) == (
        "M / Sand",
        1990,
        12,
        "/static/img/mug.svg",
    )
    again = await browser_like.post(add, data={**variant, "stock": "3"})
    assert again.status_code == 409 and "already has a SKU &#39;M / Sand&#39;" in again.text
    assert 'name="stock" type="text" value="3"' in again.text
    assert "<option selected>Sand</option>" in again.text
    bad_price = await browser_like.post(
        add, data={**variant, "value-1": "Black", "list_price": "x"}
    )
    assert bad_price.status_code == 422 and 'id="new-price-error"' in bad_price.text
    not_a_value = await browser_like.post(add, data={**variant, "value-1": "Red"})
    assert not_a_value.status_code == 422 and "not a value of" in not_a_value.text
    assert len((await _detail(http, product_id))["skus"]) == 1
    # The SKU uses M and Sand: the options can grow, not lose them.
    form |= {f"list_price-{sku['id']}": "19.90", f"stock-{sku['id']}": "12"}
    form |= {f"shown-stock-{sku['id']}": "12"}
    shrunk = await browser_like.post(edit, data={**form, **rows, "option-values-1": "Black"})
    assert shrunk.status_code == 409 and "keep the value" in shrunk.text
    grown = await browser_like.post(edit, data={**form, **rows, "option-values-0": "S, M, L, XL"})
    assert grown.status_code == 303
    assert (await _detail(http, product_id))["options"][0]["values"] == ["S", "M", "L", "XL"]


async def test_a_product_without_options_adds_named_variants(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id, _ = await _product(http, seller, "Scarf")
    csrf = await sign_in(browser_like, seller.token)
    page = await browser_like.get(f"/seller/products/{product_id}")
    assert 'id="new-variant"' in page.text and "new-value-0" not in page.text
    added = await browser_like.post(
        f"/seller/products/{product_id}/skus",
        data={"csrf": csrf, "variant": "Long", "list_price": "15", "stock": "4", "currency": "USD"},
    )
    assert added.status_code == 303, added.text
    skus = (await _detail(http, product_id))["skus"]
    assert [(s["variant"], s["list_price"], s["currency"]) for s in skus][1] == (
        "Long",
        1500,
        "USD",
    )


async def test_the_product_editor_changes_title_price_and_stock_all_or_nothing(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    product_id, sku_id = await _product(http, seller, "Scarf", price=1250, stock=10)
    csrf = await sign_in(browser_like, seller.token)
    page = await browser_like.get(f"/seller/products/{product_id}")
    assert page.status_code == 200
    assert f'name="list_price-{sku_id}" type="text" value="12.50"' in page.text
    assert f'name="stock-{sku_id}" type="text" value="10"' in page.text
    edit = f"/seller/products/{product_id}"
    form = {
        "csrf": csrf,
        "title": "Silk scarf",
        "description": "Hand rolled",
        "category": "Scarves",
        f"list_price-{sku_id}": "15",
        f"stock-{sku_id}": "20",
        f"shown-stock-{sku_id}": "10",
    }
    for bad, field in (
        ({f"list_price-{sku_id}": "15,00"}, f"list_price-{sku_id}"),
        ({f"list_price-{sku_id}": "0"}, f"list_price-{sku_id}"),
        ({f"stock-{sku_id}": "-3"}, f"stock-{sku_id}"),
        ({f"stock-{sku_id}": "2000000000"}, f"stock-{sku_id}"),
        ({"title": "   "}, "title"),
    ):
        r = await browser_like.post(edit, data={**form, **bad})
        assert r.status_code == 422, (bad, r.text)
        assert f'id="edit-{field.replace("list_price", "price")}-error"' in r.text, bad
        assert 'value="Silk scarf"' in r.text or bad.get("title"), bad  # typed title kept
        assert "Hand rolled</textarea>" in r.text
    assert_unchanged = await _detail(http, product_id)
    assert (assert_unchanged["title"], assert_unchanged["skus"][0]["list_price"]) == ("Scarf", 1250)

    forged = await browser_like.post(edit, data={**form, "csrf": "x"})
    assert forged.status_code == 403 and 'value="Silk scarf"' in forged.text

    # A deal promised 6 units: stock 5 is refused, and so is the rest of the form with it.
    deal = await http.post(
        "/api/deals",
        headers=seller.headers,
        json={
            "sku_id": sku_id,
            "deal_price": 900,
            "quantity": 6,
            "per_buyer_limit": 1,
            "duration_s": 600,
        },
    )
    assert (
        await http.post(f"/api/deals/{deal.json()['deal']['id']}/start", headers=seller.headers)
    ).status_code == 200
    below = await browser_like.post(edit, data={**form, f"stock-{sku_id}": "5"})
    assert below.status_code == 409 and "promised more units" in below.text
    assert 'value="Silk scarf"' in below.text
    detail = await _detail(http, product_id)
    assert (detail["title"], detail["skus"][0]["list_price"], detail["skus"][0]["stock"]) == (
        "Scarf",
        1250,
        10,
    )

    saved = await browser_like.post(edit, data=form)
    assert (saved.status_code, saved.headers["location"]) == (303, f"{edit}?saved=1")
    detail = await _detail(http, product_id)
    assert (detail["title"], detail["description"], detail["category"]) == (
        "Silk scarf",
        "Hand rolled",
        "Scarves",
    )
    assert [(s["list_price"], s["stock"], s["allocated"]) for s in detail["skus"]] == [
        (1500, 20, 6)
    ]

    # Saving a title leaves alone stock that changed since the page was drawn (a sale, say).
    await http.patch(f"/api/skus/{sku_id}", headers=seller.headers, json={"stock": 17})
    retitled = await browser_like.post(
        edit,
        data={**form, "title": "Scarf", f"stock-{sku_id}": "20", f"shown-stock-{sku_id}": "20"},
    )
    assert retitled.status_code == 303
    detail = await _detail(http, product_id)
    assert (detail["title"], detail["skus"][0]["stock"]) == ("Scarf", 17)

    # A new stock typed over a page that showed 17, after a sale took it to 16: refused with
    # the stock as it is, not written over the sale.
    await http.patch(f"/api/skus/{sku_id}", headers=seller.headers, json={"stock": 16})
    stale = await browser_like.post(
        edit, data={**form, f"stock-{sku_id}": "19", f"shown-stock-{sku_id}": "17"}
    )
    assert stale.status_code == 409 and "it is 16 now" in stale.text
    assert (await _detail(http, product_id))["skus"][0]["stock"] == 16

    other = await make_seller(db)
    assert (await browser_like.get(f"/seller/products/{2_000_000_000}")).status_code == 404
    foreign_id, foreign_sku = await _product(http, other, "Not yours")
    assert (await browser_like.get(f"/seller/products/{foreign_id}")).status_code == 404
    steal = await browser_like.post(
        f"/seller/products/{foreign_id}",
        data={"csrf": csrf, "title": "Mine now", f"list_price-{foreign_sku}": "1"},
    )
    assert steal.status_code == 404
    assert (
        await browser_like.post(f"/seller/products/{foreign_id}/archive", data={"csrf": csrf})
    ).status_code == 404
    assert (await _detail(http, foreign_id))["title"] == "Not yours"
    assert (await _detail(http, foreign_id))["archived"] is False


async def test_yen_prices_are_edited_without_sen(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id, sku_id = await _product(http, seller, "Tea", price=1200, currency="JPY")
    csrf = await sign_in(browser_like, seller.token)
    page = await browser_like.get(f"/seller/products/{product_id}")
    assert f'name="list_price-{sku_id}" type="text" value="1200"' in page.text
    form = {"csrf": csrf, "title": "Tea", f"list_price-{sku_id}": "1500.5"}
    form |= {f"stock-{sku_id}": "10", f"shown-stock-{sku_id}": "10"}
    sen = await browser_like.post(f"/seller/products/{product_id}", data=form)
    assert sen.status_code == 422 and "Prices are written like 1000" in sen.text
    ok = await browser_like.post(
        f"/seller/products/{product_id}", data={**form, f"list_price-{sku_id}": "1500"}
    )
    assert ok.status_code == 303
    assert (await _detail(http, product_id))["skus"][0]["list_price"] == 1500


# --- archiving -------------------------------------------------------------------------------


async def test_an_archived_product_leaves_the_shop_and_can_come_back(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    product_id, sku_id = await _product(http, seller, "Old hat")
    csrf = await sign_in(browser_like, seller.token)
    h = seller.headers
    assert (
        await browser_like.post(f"/seller/products/{product_id}/archive", data={"tab": "x"})
    ).status_code == 403  # no CSRF field: refused, nothing archived
    assert (await _detail(http, product_id))["archived"] is False
    archived = await browser_like.post(
        f"/seller/products/{product_id}/archive", data={"csrf": csrf}
    )
    assert archived.headers["location"] == "/seller?products=archived#products"
    assert (await _detail(http, product_id))["archived"] is True
    listed = await http.get("/api/products", params={"shop_id": seller.shop.id})
    assert listed.json()["products"] == []
    assert "Old hat" not in (await http.get(f"/shop/{seller.shop.handle}")).text
    center = await browser_like.get("/seller")
    assert f'id="product-{product_id}"' not in center.text
    shelf = await browser_like.get("/seller", params={"products": "archived"})
    assert f'id="product-{product_id}"' in shelf.text and "Unarchive" in shelf.text

    room = await http.post("/api/rooms", headers=h, json={"shop_id": seller.shop.id, "title": "R"})
    bag = f"/api/rooms/{room.json()['room']['id']}/bag"
    assert_error(
        await http.post(bag, headers=h, json={"product_id": product_id}), 409, "product_archived"
    )
    deal = {"sku_id": sku_id, "deal_price": 900, "quantity": 1, "per_buyer_limit": 1}
    assert_error(
        await http.post("/api/deals", headers=h, json={**deal, "duration_s": 60}),
        409,
        "product_archived",
    )
    again = await http.post(f"/api/products/{product_id}/archive", headers=h)
    assert again.status_code == 200 and again.json()["product"]["archived"] is True

    back = await http.post(f"/api/products/{product_id}/unarchive", headers=h)
    assert back.status_code == 200 and back.json()["product"]["archived"] is False
    assert "Old hat" in (await http.get(f"/shop/{seller.shop.handle}")).text
    assert (await http.post(bag, headers=h, json={"product_id": product_id})).status_code == 200

    other = await make_seller(db)
    assert_error(
        await http.post(f"/api/products/{product_id}/archive", headers=other.headers),
        404,
        "product_not_found",
    )
    assert (await _detail(http, product_id))["archived"] is False


async def test_a_product_with_a_live_deal_is_not_archived(
    browser_like: httpx.AsyncClient, http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    deal = await http_live_deal(http, seller, quantity=3)
    listed = await http.get("/api/products", params={"shop_id": seller.shop.id})
    (product_id,) = [p["id"] for p in listed.json()["products"]]  # a new seller: one product
    error = assert_error(
        await http.post(f"/api/products/{product_id}/archive", headers=seller.headers),
        409,
        "product_has_live_deal",
    )
    assert error["details"]["deal_ids"] == [deal["id"]]
    csrf = await sign_in(browser_like, seller.token)
    page = await browser_like.post(f"/seller/products/{product_id}/archive", data={"csrf": csrf})
    assert page.status_code == 409 and "stop it before archiving" in page.text
    assert (await _detail(http, product_id))["archived"] is False

    stopped = await browser_like.post(f"/seller/deals/{deal['id']}/stop", data={"csrf": csrf})
    assert stopped.status_code == 303
    archived = await http.post(f"/api/products/{product_id}/archive", headers=seller.headers)
    assert archived.status_code == 200  # an ended deal keeps its orders; the product may go


async def test_a_scheduled_deal_does_not_hold_archiving_back_and_does_not_start_after(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product_id, sku_id = await _product(http, seller, "Beanie", price=2000, stock=10)
    made = await http.post(
        "/api/deals",
        headers=seller.headers,
        json={
            "sku_id": sku_id,
            "deal_price": 900,
            "quantity": 4,
            "per_buyer_limit": 1,
            "duration_s": 600,
        },
    )
    deal_id = made.json()["deal"]["id"]
    archived = await http.post(f"/api/products/{product_id}/archive", headers=seller.headers)
    assert archived.status_code == 200
    assert_error(
        await http.post(f"/api/deals/{deal_id}/start", headers=seller.headers),
        409,
        "product_archived",
    )
    detail = await _detail(http, product_id)
    assert detail["skus"][0]["allocated"] == 0  # nothing promised to a deal that cannot run
    deal = (await http.get(f"/api/deals/{deal_id}")).json()["deal"]
    assert deal["status"] == "scheduled"


# --- deals -------------------------------------------------------------------------------------


def _deal_row(page: httpx.Response, deal_id: int) -> str:
    found = re.search(rf'<tr id="deal-{deal_id}".*?</tr>', page.text, re.S)
    assert found, f"deal {deal_id} is not listed"
    return found.group(0)


async def test_the_deals_tab_lists_units_and_state_and_stops_a_live_deal(
    browser_like: httpx.AsyncClient,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
) -> None:
    deal = await http_live_deal(http, seller, quantity=99, limit=5)
    _, buyer = viewer_headers(sessions)
    await reserve(http, deal["id"], buyer, qty=2)
    csrf = await sign_in(browser_like, seller.token)
    row = _deal_row(await browser_like.get("/seller"), deal["id"])
    assert 'data-status="live"' in row and "open" in row
    for unit, n in (("quantity", "99 units"), ("sold", "sold 0"), ("held", "held 2")):
        assert f'data-unit="{unit}">{n}<' in row, unit
    assert 'data-unit="available">available 97<' in row
    assert "$49.00" in row and "Stop" in row

    stop = f"/seller/deals/{deal['id']}/stop"
    assert (await browser_like.post(stop, data={"tab": "x"})).status_code == 403
    assert (await http.get(f"/api/deals/{deal['id']}")).json()["deal"]["status"] == "live"
    assert (await browser_like.post(stop, data={"csrf": csrf})).status_code == 303
    row = _deal_row(await browser_like.get("/seller"), deal["id"])
    # Ended, or already settled: the sweeper settles a stopped deal with nothing being paid for
    # as soon as it passes (it may have, between the stop and this read).
    assert re.search('data-status="(ended|settled)"', row) and "Stop" not in row
    assert (await browser_like.post(stop, data={"csrf": csrf})).status_code == 303  # idempotent

    other = await make_seller(db)
    await sign_in(browser_like, other.token)
    assert f'id="deal-{deal["id"]}"' not in (await browser_like.get("/seller")).text
    foreign = await browser_like.post(
        stop, data={"csrf": CSRF.findall((await browser_like.get("/seller")).text)[0]}
    )
    assert foreign.status_code == 404
