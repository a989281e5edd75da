"""Deals over HTTP: terms that break a rule are refused with its code, a deal is started once,
and only a started deal inside its window takes reservations; two deals never promise the
same units."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kernel.clock import now_ms
from tests.conftest import SellerAccount
from tests.helpers import (
    LIST_PRICE,
    Headers,
    Listing,
    assert_error,
    deal_body,
    deal_stock,
    deals_of_sku,
    get_deal,
    get_product,
    http_room,
    make_listing,
    new_product,
    new_sku,
    reserve,
)

pytestmark = pytest.mark.storage

UNUSED_ID = 2_000_000_000  # fits the SQL INTEGER ids, and no test makes that many rows


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({"deal_price": LIST_PRICE}, "deal_price_not_below_list", id="price-equal"),
        pytest.param({"deal_price": LIST_PRICE + 1}, "deal_price_not_below_list", id="price-above"),
        pytest.param({"quantity": 11}, "deal_quantity_above_stock", id="quantity-above-stock"),
        pytest.param({"quantity": 2, "per_buyer_limit": 3}, "limit_above_quantity", id="limit"),
    ],
)
async def test_deal_breaking_a_rule_is_refused(
    http: httpx.AsyncClient, seller: SellerAccount, overrides: dict[str, Any], code: str
) -> None:
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=10)
    r = await http.post(
        "/api/deals", headers=seller.headers, json=deal_body(sku["id"], **overrides)
    )
    assert_error(r, 422, code)
    assert await deals_of_sku(http, sku["id"]) == []


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({"deal_price": LIST_PRICE}, "deal_price_not_below_list", id="price-equal"),
        pytest.param({"quantity": 11}, "deal_quantity_above_stock", id="quantity-above-stock"),
        # invalid_limit, from the room's own check, until there was one check (decision 0022)
        pytest.param({"quantity": 2, "per_buyer_limit": 3}, "limit_above_quantity", id="limit"),
    ],
)
async def test_a_room_deal_breaking_a_rule_gets_the_same_code(
    http: httpx.AsyncClient, seller: SellerAccount, overrides: dict[str, Any], code: str
) -> None:
    room, _, sku = await http_room(http, seller, stock=10, list_price=LIST_PRICE)
    body = {"sku_id": sku, "deal_price": 4900, "quantity": 10, "per_buyer_limit": 2}
    r = await http.post(
        f"/api/rooms/{room}/deals",
        headers=seller.headers,
        json={**body, "countdown_s": 10, "duration_s": 60, **overrides},
    )
    assert_error(r, 422, code)
    assert await deals_of_sku(http, sku) == []


async def test_deal_on_unknown_sku_is_404(http: httpx.AsyncClient, seller: SellerAccount) -> None:
    r = await http.post("/api/deals", headers=seller.headers, json=deal_body(UNUSED_ID))
    assert_error(r, 404, "sku_not_found")


async def test_deal_on_an_id_beyond_sql_integer_is_422(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    r = await http.post("/api/deals", headers=seller.headers, json=deal_body(2**31))
    assert_error(r, 422, "invalid_request")


async def test_deal_on_foreign_sku_is_404(
    http: httpx.AsyncClient, live: Listing, rival: SellerAccount
) -> None:
    r = await http.post("/api/deals", headers=rival.headers, json=deal_body(live.sku_id))
    assert_error(r, 404, "sku_not_found")
    assert [d["id"] for d in await deals_of_sku(http, live.sku_id)] == [live.deal_id]


async def test_start_loads_stock_once(
    http: httpx.AsyncClient, scheduled: Listing, seller: SellerAccount
) -> None:
    first = await http.post(f"/api/deals/{scheduled.deal_id}/start", headers=seller.headers)
    assert first.status_code == 200, first.text
    assert first.json()["deal"]["status"] == "live"
    assert first.json()["deal"]["stock"] == {"available": 10, "held": 0, "sold": 0}
    again = await http.post(f"/api/deals/{scheduled.deal_id}/start", headers=seller.headers)
    assert again.status_code == 200  # idempotent: a start whose Redis step failed can be redone
    assert await deal_stock(http, scheduled.deal_id) == {"available": 10, "held": 0, "sold": 0}
    product = (await http.get(f"/api/products/{scheduled.product_id}")).json()["product"]
    assert [(s["stock"], s["allocated"]) for s in product["skus"]] == [(10, 10)]  # once


async def test_stopped_deal_refuses_reservations(
    http: httpx.AsyncClient, live: Listing, seller: SellerAccount, buyer: Headers
) -> None:
    await reserve(http, live.deal_id, buyer)
    stopped = await http.post(f"/api/deals/{live.deal_id}/stop", headers=seller.headers)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["deal"]["status"] == "ended"
    r = await http.post(f"/api/deals/{live.deal_id}/reserve", headers=buyer, json={"qty": 1})
    assert_error(r, 409, "deal_ended")
    again = await http.post(f"/api/deals/{live.deal_id}/stop", headers=seller.headers)
    assert again.status_code == 200  # stopping is idempotent, so a half-done stop can be redone
    assert (again.json()["deal"]["status"], again.json()["deal"]["phase"]) == ("ended", "ended")
    # Stopping gave the held unit back at once: nobody may start paying a stopped deal.
    assert await deal_stock(http, live.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def test_scheduled_deal_refuses_reservations(
    http: httpx.AsyncClient, scheduled: Listing, buyer: Headers
) -> None:
    r = await http.post(f"/api/deals/{scheduled.deal_id}/reserve", headers=buyer, json={"qty": 1})
    assert_error(r, 409, "deal_not_live")
    deal = await get_deal(http, scheduled.deal_id)
    assert deal["status"] == "scheduled"
    assert "stock" not in deal  # nothing was loaded into Redis


async def test_a_scheduled_deal_cannot_be_stopped(
    http: httpx.AsyncClient, scheduled: Listing, seller: SellerAccount
) -> None:
    r = await http.post(f"/api/deals/{scheduled.deal_id}/stop", headers=seller.headers)
    assert_error(r, 409, "deal_not_live")
    assert (await get_deal(http, scheduled.deal_id))["status"] == "scheduled"


async def test_unknown_deal_is_404(http: httpx.AsyncClient, buyer: Headers) -> None:
    r = await http.post(f"/api/deals/{UNUSED_ID}/reserve", headers=buyer, json={"qty": 1})
    assert_error(r, 404, "deal_not_found")
    assert_error(await http.get(f"/api/deals/{UNUSED_ID}"), 404, "deal_not_found")


async def test_deal_starting_later_refuses_reservations(
    http: httpx.AsyncClient, seller: SellerAccount, buyer: Headers
) -> None:
    starts = now_ms() + 3_600_000
    item = await make_listing(http, seller, starts_ms=starts)
    r = await http.post(f"/api/deals/{item.deal_id}/reserve", headers=buyer, json={"qty": 1})
    error = assert_error(r, 409, "deal_not_started")
    assert error["details"]["starts_ms"] == starts
    assert await deal_stock(http, item.deal_id) == {"available": 10, "held": 0, "sold": 0}


async def new_deal(
    http: httpx.AsyncClient, seller: SellerAccount, sku_id: int, quantity: int
) -> httpx.Response:
    body = {
        "sku_id": sku_id,
        "deal_price": 4900,
        "quantity": quantity,
        "per_buyer_limit": 1,
        "duration_s": 600,
    }
    return await http.post("/api/deals", headers=seller.headers, json=body)


async def test_two_deals_can_never_promise_the_same_units(
    http: httpx.AsyncClient, seller: SellerAccount
) -> None:
    product = await new_product(http, seller)
    sku = await new_sku(http, seller, product["id"], stock=10)
    first = (await new_deal(http, seller, sku["id"], 10)).json()["deal"]
    second = (await new_deal(http, seller, sku["id"], 10)).json()["deal"]  # both scheduled: fine
    started = await http.post(f"/api/deals/{first['id']}/start", headers=seller.headers)
    assert started.status_code == 200
    refused = await http.post(f"/api/deals/{second['id']}/start", headers=seller.headers)
    error = assert_error(refused, 409, "stock_unavailable")
    assert error["details"] == {"quantity": 10, "unallocated": 0}
    assert (await get_deal(http, second["id"]))["status"] == "scheduled"
    assert_error(await new_deal(http, seller, sku["id"], 1), 422, "deal_quantity_above_stock")
    cut = await http.patch(f"/api/skus/{sku['id']}", headers=seller.headers, json={"stock": 9})
    assert_error(cut, 409, "stock_allocated")
    skus = (await get_product(http, product["id"]))["skus"]
    assert [(s["stock"], s["allocated"]) for s in skus] == [(10, 10)]
    raised = await http.patch(f"/api/skus/{sku['id']}", headers=seller.headers, json={"stock": 20})
    assert raised.json()["sku"]["stock"] == 20
    again = await http.post(f"/api/deals/{second['id']}/start", headers=seller.headers)
    assert again.status_code == 200  # with more stock, the second deal gets its own units
