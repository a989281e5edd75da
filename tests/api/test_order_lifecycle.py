"""Orders over HTTP: a paid hold becomes an order in SQL with its shipping address, buyers and
sellers see only their own, a seller moves it through its states, and lists filter by
status."""

from __future__ import annotations

import httpx
import pytest

from checkout.payments import SandboxProvider
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    CARD_OK,
    DEAL_PRICE,
    Headers,
    PaidOrder,
    assert_error,
    charges_for,
    hold_state,
    make_listing,
    orders_seen_by,
    poll,
    reserve,
    sku_stock,
)
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def test_paid_order_reaches_sql(http: httpx.AsyncClient, paid: PaidOrder) -> None:
    order = paid.order
    assert order["deal_id"] == paid.item.deal_id
    assert order["shop_id"] == paid.item.shop_id
    assert order["sku_id"] == paid.item.sku_id
    assert (order["quantity"], order["unit_price"], order["total"]) == (2, DEAL_PRICE, 9800)
    assert (order["status"], order["payment_ref"]) == ("paid", paid.payment_ref)
    assert await sku_stock(http, paid.item) == 8  # the SKU gave up what the deal sold


ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


async def test_the_shipping_address_given_at_checkout_reaches_the_order(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, ledger: SandboxProvider
) -> None:
    item = await make_listing(http, seller)
    _, buyer = viewer_headers(sessions)
    hold = await reserve(http, item.deal_id, buyer)
    pay = f"/api/holds/{hold['id']}/checkout"
    for bad in ({**ADDRESS, "country": "gb"}, {**ADDRESS, "city": " "}, {"name": "No street"}):
        r = await http.post(
            pay, headers={**buyer, "Idempotency-Key": "k"}, json={"card": CARD_OK, "shipping": bad}
        )
        assert_error(r, 422, "invalid_request")
    assert await charges_for(ledger, hold["id"]) == []  # refused before any charge
    assert await hold_state(http, hold["id"], buyer) == "held"
    r = await http.post(
        pay, headers={**buyer, "Idempotency-Key": "k"}, json={"card": CARD_OK, "shipping": ADDRESS}
    )
    assert r.status_code == 201, r.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    assert [o["shipping"] for o in orders] == [{**ADDRESS, "line2": ""}]
    assert (orders[0]["carrier"], orders[0]["tracking_number"]) == ("", "")


async def test_a_seller_cancels_an_order_before_it_ships(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
) -> None:
    path = f"/api/orders/{paid.order['id']}"
    r = await http.post(f"{path}/cancel", headers=seller.headers, json={"note": "out of stock"})
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "cancelled"
    assert r.json()["refund"]["reason"] == "out of stock"
    again = {**seller.headers, "Idempotency-Key": "after-cancel"}
    assert_error(await http.post(f"{path}/refund", headers=again), 409, "order_not_refundable")


async def test_buyers_see_only_their_own_orders(
    http: httpx.AsyncClient, paid: PaidOrder, sessions: GuestSessions
) -> None:
    _, stranger = viewer_headers(sessions)
    assert await orders_seen_by(http, stranger) == []
    hold_path = f"/api/orders/by-hold/{paid.order['hold_id']}"
    assert_error(await http.get(hold_path, headers=stranger), 404, "order_not_found")
    mine = await http.get(hold_path, headers=paid.buyer)
    assert mine.status_code == 200, mine.text
    assert mine.json()["order"]["id"] == paid.order["id"]
    assert [(e["from"], e["to"]) for e in mine.json()["order"]["events"]] == [(None, "paid")]


async def test_sellers_see_only_their_shops_orders(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount, rival: SellerAccount
) -> None:
    assert [o["id"] for o in await orders_seen_by(http, seller.headers)] == [paid.order["id"]]
    assert await orders_seen_by(http, rival.headers) == []
    path = f"/api/orders/{paid.order['id']}"
    assert_error(await http.get(path, headers=rival.headers), 404, "order_not_found")
    assert_error(await http.post(f"{path}/confirm", headers=rival.headers), 404, "order_not_found")
    r = await http.get(path, headers=seller.headers)
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "paid"
    assert len(r.json()["order"]["events"]) == 1


async def test_seller_moves_order_to_completed(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
) -> None:
    path = f"/api/orders/{paid.order['id']}"
    steps = [
        ("confirm", "awaiting_shipment"),
        ("ship", "shipped"),
        ("deliver", "delivered"),
        ("complete", "completed"),
    ]
    tracking = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
    for action, status in steps:
        if action == "ship":
            error = assert_error(
                await http.post(f"{path}/ship", headers=seller.headers, json={"carrier": "UPS"}),
                422,
                "tracking_required",
            )
            assert error["details"]["missing"] == ["tracking_number"]
        if action == "deliver":
            assert_error(
                await http.post(f"{path}/deliver", headers=seller.headers, json={"carrier": "UPS"}),
                422,
                "unexpected_tracking",
            )
        body = {"note": action, **(tracking if action == "ship" else {})}
        r = await http.post(f"{path}/{action}", headers=seller.headers, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["order"]["status"] == status

    error = assert_error(
        await http.post(f"{path}/ship", headers=seller.headers), 409, "invalid_transition"
    )
    assert error["details"]["status"] == "completed"
    assert_error(await http.post(f"{path}/teleport", headers=seller.headers), 404, "unknown_action")

    r = await http.get(path, headers=seller.headers)
    order = r.json()["order"]
    assert order["status"] == "completed"
    assert (order["carrier"], order["tracking_number"]) == ("UPS", "1Z999AA10123456784")
    assert [(e["from"], e["to"], e["note"]) for e in order["events"]] == [
        (None, "paid", ""),
        ("paid", "awaiting_shipment", "confirm"),
        ("awaiting_shipment", "shipped", "ship"),
        ("shipped", "delivered", "deliver"),
        ("delivered", "completed", "complete"),
    ]
    assert {e["actor"] for e in order["events"][1:]} == {f"seller:{seller.seller.id}"}


async def test_order_filter_by_status(
    http: httpx.AsyncClient, paid: PaidOrder, seller: SellerAccount
) -> None:
    r = await http.get("/api/orders", headers=seller.headers, params={"status": "paid"})
    assert [o["id"] for o in r.json()["orders"]] == [paid.order["id"]]
    r = await http.get("/api/orders", headers=seller.headers, params={"status": "shipped"})
    assert r.json()["orders"] == []


async def test_unknown_status_filters_are_422(
    http: httpx.AsyncClient, seller: SellerAccount, buyer: Headers
) -> None:
    for status in ("bogus", "\u0000"):
        assert_error(await http.get("/api/deals", params={"status": status}), 422, "invalid_status")
        r = await http.get("/api/orders", params={"status": status}, headers=seller.headers)
        assert_error(r, 422, "invalid_status")
    r = await http.get("/api/orders/by-hold/%00", headers=buyer)
    assert_error(r, 404, "order_not_found")
