"""A sold-out list-price SKU's waitlist against a running server (decision 0036): units that
come back to the shelf, or a restock, are kept for the people waiting, one each, in the order
they joined, before anyone else can check one out; the waiter's checkout takes the kept unit at
the price a checkout charges; a kept unit nobody takes goes on down the line, and a waiter in a
live room is told on its websocket."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from checkout.holds import HoldStore
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import CARD_OK, assert_error, checkout, http_room, orders_seen_by, poll
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
Headers = dict[str, str]
PRICE = 4200


async def _buy_now(
    http: httpx.AsyncClient, shop: int, sku: int, who: Headers, qty: int = 1
) -> httpx.Response:
    body = {"items": [{"sku_id": sku, "qty": qty}], "shop_id": shop}
    return await http.post("/api/cart/checkout", headers=who, json=body)


async def _sold_out(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions, units: int
) -> tuple[int, int, list[tuple[dict[str, Any], Headers, str]]]:
    """A SKU (in a live room's bag) whose ``units`` are all held by buyers at list price:
    (room, sku, [(hold, headers, buyer id)])."""
    room, _product, sku = await http_room(http, seller, stock=units, list_price=PRICE)
    early = await http.post(
        f"/api/skus/{sku}/waitlist", headers=viewer_headers(sessions)[1], json={}
    )
    assert_error(early, 409, "not_sold_out")
    holders = []
    for _ in range(units):
        buyer_id, who = viewer_headers(sessions)
        held = await _buy_now(http, seller.shop.id or 0, sku, who)
        assert held.status_code == 201, held.text
        holders.append((held.json()["hold"], who, buyer_id))
    return room, sku, holders


async def _place(http: httpx.AsyncClient, sku: int, who: Headers) -> dict[str, Any]:
    r = await http.get(f"/api/skus/{sku}/waitlist", headers=who)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["waitlist"]
    return found


async def _join(http: httpx.AsyncClient, sku: int, who: Headers, **body: Any) -> int:
    r = await http.post(f"/api/skus/{sku}/waitlist", headers=who, json=body)
    assert r.status_code == 201, r.text
    place: int = r.json()["waitlist"]["place"]
    return place


async def test_fifty_waiting_ten_given_back_the_first_ten_get_them_in_order(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    shop = seller.shop.id or 0
    _room, sku, holders = await _sold_out(http, seller, sessions, 10)
    waiters = [viewer_headers(sessions)[1] for _ in range(50)]
    places = await asyncio.gather(*(_join(http, sku, w) for w in waiters))
    assert sorted(places) == list(range(1, 51))
    assert await _join(http, sku, waiters[0]) == places[0]  # joining again keeps the place
    in_line = [w for _, w in sorted(zip(places, waiters, strict=True), key=lambda p: p[0])]
    # The ten holders give their units back at once, while strangers try to check one out:
    # every unit is kept for the next in line, none reaches the strangers.
    strangers = [viewer_headers(sessions)[1] for _ in range(20)]
    answers = await asyncio.gather(
        *(http.delete(f"/api/holds/{hold['id']}", headers=who) for hold, who, _ in holders),
        *(_buy_now(http, shop, sku, who) for who in strangers),
    )
    assert all(r.status_code == 204 for r in answers[:10]), [r.text for r in answers[:10]]
    for refused in answers[10:]:
        assert_error(refused, 409, "insufficient_stock")
    first_ten = [await _place(http, sku, w) for w in in_line[:10]]
    assert all(f["place"] == 0 and len(f["holds"]) == 1 for f in first_ten)
    assert {f["holds"][0]["state"] for f in first_ten} == {"offered"}
    numbers = [int(f["holds"][0]["id"].split("-")[1]) for f in first_ten]
    assert numbers == sorted(numbers)  # kept in the order of the line
    rest = [await _place(http, sku, w) for w in in_line[10:]]
    assert [f["place"] for f in rest] == list(range(1, 41))
    assert all(f["holds"] == [] for f in rest)
    # A kept unit is not a priced hold: it is checked out like any unit, and only its waiter's
    # checkout may take it.
    kept = first_ten[0]["holds"][0]["id"]
    paid = await http.post(
        f"/api/holds/{kept}/checkout",
        headers={**in_line[0], "Idempotency-Key": "kept-1"},
        json={"card": "4242424242424242"},
    )
    assert_error(paid, 409, "checkout_required")
    taken = await _buy_now(http, shop, sku, in_line[0])
    assert taken.status_code == 201, taken.text
    assert taken.json()["hold"]["total"] == PRICE
    assert (await _place(http, sku, in_line[0]))["holds"] == []
    assert_error(await _buy_now(http, shop, sku, in_line[0]), 409, "insufficient_stock")
    left = await http.delete(f"/api/skus/{sku}/waitlist", headers=in_line[10])
    assert left.status_code == 204 and (await _place(http, sku, in_line[11]))["place"] == 1


async def test_a_restock_goes_to_the_line_first(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    shop = seller.shop.id or 0
    _room, sku, _holders = await _sold_out(http, seller, sessions, 2)
    waiters = [viewer_headers(sessions)[1] for _ in range(3)]
    for who in waiters:
        await _join(http, sku, who)
    restocked = await http.patch(f"/api/skus/{sku}", headers=seller.headers, json={"stock": 4})
    assert restocked.status_code == 200, restocked.text
    assert_error(
        await _buy_now(http, shop, sku, viewer_headers(sessions)[1]), 409, "insufficient_stock"
    )
    seen = [await _place(http, sku, who) for who in waiters]
    assert [len(f["holds"]) for f in seen] == [1, 1, 0] and seen[2]["place"] == 1


async def test_a_kept_unit_nobody_takes_goes_on_down_the_line_and_each_is_told(
    tight_server: Server, sessions: GuestSessions, seller: SellerAccount, holds: HoldStore
) -> None:
    """On a node with two-second holds: the holder's unit lapses to the first in line, told
    on the websocket of the room they waited in; they do not take it, so it lapses to the
    second, who is told and takes it."""
    async with httpx.AsyncClient(base_url=tight_server.base_url, timeout=30) as http:
        room, sku, holders = await _sold_out(http, seller, sessions, 1)
        viewers = []
        for _ in range(2):
            _buyer, who = viewer_headers(sessions)
            v = await WsViewer.open(tight_server.base_url, room)
            await v.hello(who["Authorization"].removeprefix("Bearer "))
            await _join(http, sku, who, room_id=room)
            viewers.append((who, v))
        first = await viewers[0][1].next("waitlist.offered", within=30)
        assert (first["sku_id"], first["shop_id"]) == (sku, seller.shop.id)
        assert first["hold"]["state"] == "offered"
        assert not viewers[1][1].of("waitlist.offered")
        second = await viewers[1][1].next("waitlist.offered", within=30)
        assert second["hold"]["id"] != first["hold"]["id"]
        taken = await _buy_now(http, seller.shop.id or 0, sku, viewers[1][0])
        assert taken.status_code == 201, taken.text
        assert_error(
            await _buy_now(http, seller.shop.id or 0, sku, viewers[0][0]), 409, "insufficient_stock"
        )
        for _, v in viewers:
            await v.close()
        assert holders  # the first holder's unit is the one that went down the line


async def test_a_cancelled_order_gives_its_unit_to_the_line(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    shop = seller.shop.id or 0
    _room, sku, holders = await _sold_out(http, seller, sessions, 1)
    hold, buyer, _buyer_id = holders[0]
    paid = await checkout(http, hold["id"], buyer, key="k", card=CARD_OK)
    assert paid.status_code == 201, paid.text
    waiter = viewer_headers(sessions)[1]
    assert await _join(http, sku, waiter) == 1
    (order,) = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) > 0)
    r = await http.post(f"/api/orders/{order['id']}/cancel", headers=seller.headers, json={})
    assert r.status_code == 200, r.text
    kept = await poll(lambda: _place(http, sku, waiter), lambda found: bool(found["holds"]))
    assert kept["place"] == 0 and kept["holds"][0]["state"] == "offered"
    assert_error(
        await _buy_now(http, shop, sku, viewer_headers(sessions)[1]), 409, "insufficient_stock"
    )
    assert (await _buy_now(http, shop, sku, waiter)).status_code == 201
