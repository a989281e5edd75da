"""The seller's pages over plain HTTP against a running ``livecart serve``: signing in with the
token, the cookie standing in for the token on the JSON API, CSRF on every change, sign-out by
token rotation, and the seller center's forms refusing bad input without changing anything.
(The browser tests in test_pages.py drive the same pages through Chromium.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from catalog import service
from catalog.db import Database
from catalog.models import Seller
from tests.conftest import SellerAccount, Server
from tests.test_api import assert_error, pay_and_wait_for_order
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def browser_like(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a cookie jar, as a browser has, and no bearer token."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, token: str, next_path: str = "/seller") -> str:
    """Sign in through the form; return the seller center's CSRF token."""
    form = await client.get("/seller/login", params={"next": next_path})
    assert form.status_code == 200
    (login_csrf,) = CSRF.findall(form.text)
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
    (login_csrf,) = CSRF.findall(form.text)
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
        (login_csrf,) = CSRF.findall(form.text)
        r = await browser_like.post(
            "/seller/login", data={"csrf": login_csrf, "token": seller.token, "next": target}
        )
        assert r.headers["location"] == "/seller", target


async def test_rotating_the_token_signs_every_browser_out(
    browser_like: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    await sign_in(browser_like, seller.token)
    async with db.session() as session:
        me = await session.get(Seller, seller.seller.id)
        assert me is not None
        me.token_hash = service.hash_token("lc_sk_rotated-" + seller.token)
        session.add(me)
        await session.commit()
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
    refunded = await browser_like.post(f"/seller/orders/{order_id}/refund", data={"csrf": csrf})
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
