"""A cart across shops (decision 0030), over HTTP against the running server: one checkout
holds every shop's items, one hold per shop, all or nothing (a shop that cannot hold gives
back what the others held, raced by many buyers); one pay request pays every hold, an order
per shop, each with its own charge; its key replays; a refusal after a hold was paid is stored
with what was paid and what was not."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from checkout.holds import HoldStore
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.helpers import (
    CARD_DECLINED,
    CARD_OK,
    LIST_PRICE,
    Headers,
    assert_error,
    make_seller,
    new_product,
    new_sku,
    orders_seen_by,
    poll,
)
from tests.test_cart import cart_checkout, put
from tests.test_vouchers import make
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def sku_of(http: httpx.AsyncClient, seller: SellerAccount, stock: int) -> int:
    product = await new_product(http, seller)
    sku_id: int = (await new_sku(http, seller, product["id"], stock=stock))["id"]
    return sku_id


async def pay(
    http: httpx.AsyncClient, buyer: Headers, holds: list[str], key: str, card: str = CARD_OK
) -> httpx.Response:
    return await http.post(
        "/api/cart/pay",
        headers={**buyer, "Idempotency-Key": key},
        json={"holds": holds, "card": card},
    )


async def held_units(holds: HoldStore, seller: SellerAccount, sku_id: int) -> int:
    counters = (await holds.shelf.stock(seller.shop.id or 0, [sku_id])).get(sku_id)
    return 0 if counters is None else counters.held


async def test_one_checkout_holds_each_shop_and_one_request_pays_them(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    other = await make_seller(db)
    mine, theirs = await sku_of(http, seller, 5), await sku_of(http, other, 5)
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, mine, 2)
    await put(http, buyer, theirs, 1)
    r = await cart_checkout(http, buyer, request_id="r1", expected_total=3 * LIST_PRICE)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert "hold" not in answer  # several: each shop's is in holds
    holds = [hold["id"] for hold in answer["holds"]]
    shops = sorted([seller.shop.id or 0, other.shop.id or 0])
    assert [int(h[1:].split("-")[0]) for h in holds] == shops
    assert answer["total"] == 3 * LIST_PRICE
    # The same request id gives the same holds.
    again = await cart_checkout(http, buyer, request_id="r1")
    assert (again.status_code, [h["id"] for h in again.json()["holds"]]) == (200, holds)

    r = await pay(http, buyer, holds, "pay-1")
    assert r.status_code == 201, r.text
    paid = r.json()["orders"]
    assert [o["hold_id"] for o in paid] == holds
    assert sum(o["amount"] for o in paid) == 3 * LIST_PRICE
    assert len({o["payment_ref"] for o in paid}) == 2  # one charge per shop's order
    replay = await pay(http, buyer, holds, "pay-1")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == r.json()

    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) == 2)
    assert sorted(o["shop_id"] for o in orders) == shops
    assert sorted(o["total"] for o in orders) == [LIST_PRICE, 2 * LIST_PRICE]
    cart = (await http.get("/api/cart", headers=buyer)).json()
    assert cart["cart"]["lines"] == []  # bought: out of the cart


async def test_a_shop_that_cannot_hold_gives_back_what_the_others_held(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    holds: HoldStore,
) -> None:
    """30 buyers race for 5 units of one shop's SKU, each with a unit of another shop's in
    the same cart: exactly 5 get holds, and the other shop holds exactly their 5 units."""
    other = await make_seller(db)
    plenty, scarce = await sku_of(http, seller, 100), await sku_of(http, other, 5)
    buyers = [viewer_headers(sessions)[1] for _ in range(30)]
    for buyer in buyers:
        await put(http, buyer, plenty, 1)
        await put(http, buyer, scarce, 1)
    answers = await asyncio.gather(*(cart_checkout(http, buyer) for buyer in buyers))
    won = [r for r in answers if r.status_code == 201]
    assert len(won) == 5, [r.status_code for r in answers]
    for r in answers:
        if r.status_code != 201:
            assert_error(r, 409, "insufficient_stock")
    assert all(len(r.json()["holds"]) == 2 for r in won)
    assert await held_units(holds, seller, plenty) == 5
    assert await held_units(holds, other, scarce) == 5


async def test_a_refusal_after_a_hold_was_paid_is_stored_with_what_was_paid(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, db: Database
) -> None:
    other = await make_seller(db)
    mine, theirs = await sku_of(http, seller, 5), await sku_of(http, other, 5)
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, mine, 1)
    await put(http, buyer, theirs, 1)
    holds = [h["id"] for h in (await cart_checkout(http, buyer)).json()["holds"]]

    # A declined card before anything is paid: stored like one hold's decline.
    declined = await pay(http, buyer, holds, "k-declined", card=CARD_DECLINED)
    error = assert_error(declined, 402, "card_declined")
    assert (error["details"]["paid"], error["details"]["unpaid"]) == ([], holds)

    # The second hold given back meanwhile: the first is paid, the answer says so, and its
    # replay is the same answer (money moved under this key).
    assert (await http.delete(f"/api/holds/{holds[1]}", headers=buyer)).status_code == 204
    r = await pay(http, buyer, holds, "k-partly")
    error = assert_error(r, 409, "hold_released")
    details: dict[str, Any] = error["details"]
    assert ([o["hold_id"] for o in details["paid"]], details["unpaid"]) == (holds[:1], holds[1:])
    replay = await pay(http, buyer, holds, "k-partly")
    assert (replay.status_code, replay.json()) == (409, r.json())
    # Nothing paid at all (every hold gone or sold): refused, and the key stays free.
    assert_error(await pay(http, buyer, holds[1:], "k-none"), 409, "hold_released")


async def test_bad_pay_requests_are_refused(
    http: httpx.AsyncClient, sessions: GuestSessions
) -> None:
    _, buyer = viewer_headers(sessions)
    bodies: list[dict[str, Any]] = [
        {"holds": [], "card": CARD_OK},
        {"holds": ["s1-1", "s1-1"], "card": CARD_OK},
        {"holds": ["nope"], "card": CARD_OK},
        {"holds": ["s1-1"] * 11, "card": CARD_OK},
        {"holds": ["s1-1"]},
    ]
    for n, body in enumerate(bodies):
        r = await http.post(
            "/api/cart/pay", headers={**buyer, "Idempotency-Key": f"b{n}"}, json=body
        )
        assert r.status_code == 422, (body, r.text)
    r = await http.post("/api/cart/pay", headers=buyer, json={"holds": ["s1-1"], "card": CARD_OK})
    assert_error(r, 422, "idempotency_key_required")


async def test_each_shop_redeems_its_own_voucher_and_a_bad_one_holds_nothing(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
    holds: HoldStore,
) -> None:
    other = await make_seller(db)
    mine, theirs = await sku_of(http, seller, 5), await sku_of(http, other, 5)
    assert (await make(http, seller, code="TEN", value=1000)).status_code == 201
    assert (await make(http, other, code="TWENTY", value=2000)).status_code == 201
    _, buyer = viewer_headers(sessions)
    await put(http, buyer, mine, 1)
    await put(http, buyer, theirs, 1)
    shop, rival = seller.shop.id or 0, other.shop.id or 0

    # A code the named shop does not have: nothing held anywhere.
    bad = [{"shop_id": shop, "code": "TWENTY"}]
    assert_error(await cart_checkout(http, buyer, vouchers=bad), 404, "voucher_not_found")
    assert_error(
        await cart_checkout(http, buyer, vouchers=bad, voucher="TEN"), 422, "invalid_request"
    )
    assert await held_units(holds, seller, mine) == 0

    named = [{"shop_id": shop, "code": "TEN"}, {"shop_id": rival, "code": "TWENTY"}]
    r = await cart_checkout(http, buyer, vouchers=named)
    assert r.status_code == 201, r.text
    by_shop = {int(h["id"][1:].split("-")[0]): h for h in r.json()["holds"]}
    assert (by_shop[shop]["voucher"], by_shop[shop]["total"]) == ("TEN", LIST_PRICE * 9 // 10)
    assert (by_shop[rival]["voucher"], by_shop[rival]["total"]) == ("TWENTY", LIST_PRICE * 8 // 10)
    assert r.json()["total"] == LIST_PRICE * 17 // 10


@pytest.mark.xdist_group("races")  # one race at a time on a 2-core machine
async def test_the_first_checkouts_of_a_fresh_shelf_all_hold_when_stock_suffices(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, holds: HoldStore
) -> None:
    """A shop nobody bought from yet: its units reach the shelf on the first checkouts'
    demand. 40 buyers checking out at once, 100 units: every one holds (one checkout's put
    still on its way to Redis is finished by the others, not taken for a shortage)."""
    sku = await sku_of(http, seller, 100)
    buyers = [viewer_headers(sessions)[1] for _ in range(40)]
    for buyer in buyers:
        await put(http, buyer, sku, 1)
    answers = await asyncio.gather(*(cart_checkout(http, buyer) for buyer in buyers))
    refused = [r.json()["error"]["code"] for r in answers if r.status_code != 201]
    assert refused == []
    assert await held_units(holds, seller, sku) == 40
