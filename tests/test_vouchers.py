"""Vouchers over HTTP against the running server (decision 0028): a seller makes one, buyers
claim it, and a storm of 1,000 concurrent claims of a 100-use voucher gets exactly 100;
per-buyer limits, windows and live-only rooms refuse with their codes; a voucher whose put on
the shelf was lost (a crash after SQL) is put there by the first claim; a creator drops one into
the live room and every viewer, including a late one, sees it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from checkout.keys import Keyspace
from kernel.db import Database
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import Headers, assert_error, make_seller
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

HOUR_MS = 3_600_000


def terms(**overrides: Any) -> dict[str, Any]:
    body = {
        "code": "LIVE10",
        "kind": "percent",
        "value": 1000,
        "currency": "USD",
        "budget": 100,
        "per_buyer": 1,
        "ends_ms": int(time.time() * 1000) + HOUR_MS,
    }
    return {**body, **overrides}


async def make(http: httpx.AsyncClient, seller: SellerAccount, **overrides: Any) -> httpx.Response:
    return await http.post(
        f"/api/shops/{seller.shop.id}/vouchers", headers=seller.headers, json=terms(**overrides)
    )


async def claim(
    http: httpx.AsyncClient, seller: SellerAccount, buyer: Headers, code: str = "LIVE10"
) -> httpx.Response:
    return await http.post(f"/api/shops/{seller.shop.id}/vouchers/{code}/claim", headers=buyer)


@pytest.mark.xdist_group("races")  # one race at a time on a 2-core machine
async def test_a_claim_storm_takes_exactly_the_budget(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    assert (await make(http, seller)).status_code == 201
    buyers = [viewer_headers(sessions)[1] for _ in range(1000)]
    gate = asyncio.Semaphore(100)

    async def one(buyer: Headers) -> tuple[int, str]:
        async with gate:
            r = await claim(http, seller, buyer)
        return r.status_code, r.json().get("error", {}).get("code", "")

    outcomes = Counter(await asyncio.gather(*(one(b) for b in buyers)))
    assert outcomes == {(201, ""): 100, (409, "voucher_exhausted"): 900}
    listed = (await http.get(f"/api/shops/{seller.shop.id}/vouchers")).json()["vouchers"]
    assert [(v["code"], v["budget"], v["left"]) for v in listed] == [("LIVE10", 100, 0)]


async def test_one_buyer_claims_as_often_as_allowed_and_windows_hold(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    now = int(time.time() * 1000)
    assert (await make(http, seller, code="TWICE", per_buyer=2, budget=5)).status_code == 201
    _, buyer = viewer_headers(sessions)
    first, second = (
        await claim(http, seller, buyer, "TWICE"),
        await claim(http, seller, buyer, "TWICE"),
    )
    assert [first.json()["claim"], second.json()["claim"]] == [
        {"code": "TWICE", "left": 4, "claimed": 1},
        {"code": "TWICE", "left": 3, "claimed": 2},
    ]
    details = assert_error(await claim(http, seller, buyer, "TWICE"), 409, "voucher_claimed")
    assert details["details"] == {"per_buyer": 2, "claimed": 2}

    later = await make(
        http, seller, code="LATER", starts_ms=now + HOUR_MS, ends_ms=now + 2 * HOUR_MS
    )
    assert later.status_code == 201, later.text
    assert_error(await claim(http, seller, buyer, "LATER"), 409, "voucher_not_started")
    assert_error(await claim(http, seller, buyer, "NOSUCH"), 404, "voucher_not_found")


async def test_refused_terms_say_which_and_change_nothing(
    http: httpx.AsyncClient, seller: SellerAccount, db: Database
) -> None:
    now = int(time.time() * 1000)
    for bad, field in [
        ({"value": 10_001}, "value"),
        ({"per_buyer": 5, "budget": 2}, "per_buyer"),
        ({"ends_ms": now - 1}, "ends_ms"),
        ({"starts_ms": now + HOUR_MS, "ends_ms": now + HOUR_MS}, "ends_ms"),
        ({"products": [10**9]}, "products"),
    ]:
        details = assert_error(await make(http, seller, code="BAD", **bad), 422, "invalid_voucher")
        assert details["details"]["field"] == field
    assert_error(await make(http, seller, code="lower"), 422, "invalid_request")
    assert (await make(http, seller, code="ONCE")).status_code == 201
    assert_error(await make(http, seller, code="ONCE"), 409, "voucher_exists")
    rival = await make_seller(db, "Rival")
    r = await http.post(
        f"/api/shops/{seller.shop.id}/vouchers", headers=rival.headers, json=terms(code="THEIRS")
    )
    assert_error(r, 404, "shop_not_found")
    listed = (await http.get(f"/api/shops/{seller.shop.id}/vouchers")).json()["vouchers"]
    assert [v["code"] for v in listed] == ["ONCE"]


async def test_a_live_only_voucher_is_claimed_only_while_its_room_is_live(
    http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    r = await http.post(
        "/api/rooms", headers=seller.headers, json={"shop_id": seller.shop.id, "title": "Drop"}
    )
    room_id = r.json()["room"]["id"]
    assert (await make(http, seller, code="ROOM", room_id=room_id)).status_code == 201
    _, buyer = viewer_headers(sessions)
    details = assert_error(await claim(http, seller, buyer, "ROOM"), 409, "voucher_room_not_live")
    assert details["details"] == {"room_id": room_id}
    assert (await http.post(f"/api/rooms/{room_id}/live", headers=seller.headers)).is_success
    assert (await claim(http, seller, buyer, "ROOM")).status_code == 201


async def test_a_voucher_missing_from_the_shelf_is_put_there_by_the_first_claim(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis: Redis,
    keys: Keyspace,
) -> None:
    assert (await make(http, seller, code="LOST", budget=2)).status_code == 201
    # The put on the shelf lost (a crash between SQL's commit and Redis): as if never made.
    for key in (keys.shelf(seller.shop.id or 0).vouchers, keys.shelf(seller.shop.id or 0).claims):
        await redis.delete(key)
    outcomes = [
        (await claim(http, seller, viewer_headers(sessions)[1], "LOST")).status_code
        for _ in range(3)
    ]
    assert outcomes == [201, 201, 409]


async def test_a_creator_drops_a_voucher_into_the_live_and_viewers_see_it(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    server: Server,
    db: Database,
) -> None:
    r = await http.post(
        "/api/rooms", headers=seller.headers, json={"shop_id": seller.shop.id, "title": "Drop"}
    )
    room_id = r.json()["room"]["id"]
    other = await http.post(
        "/api/rooms", headers=seller.headers, json={"shop_id": seller.shop.id, "title": "Other"}
    )
    assert (await make(http, seller, code="ROOM", room_id=room_id)).status_code == 201
    assert (
        await make(http, seller, code="ELSEWHERE", room_id=other.json()["room"]["id"])
    ).is_success
    assert (await make(http, seller, code="SHOPWIDE", kind="fixed", value=300)).is_success

    async def drop(code: str, headers: Headers = seller.headers) -> httpx.Response:
        return await http.post(
            f"/api/rooms/{room_id}/voucher", headers=headers, json={"code": code}
        )

    assert_error(await drop("ROOM"), 409, "room_not_live")
    assert (await http.post(f"/api/rooms/{room_id}/live", headers=seller.headers)).is_success
    viewer = await WsViewer.open(server.base_url, room_id)
    try:
        await viewer.hello(sessions.issue()[1])
        assert_error(await drop("ELSEWHERE"), 404, "voucher_not_found")
        assert_error(await drop("NOPE"), 404, "voucher_not_found")
        rival = await make_seller(db, "Rival")
        assert_error(await drop("ROOM", rival.headers), 404, "room_not_found")
        r = await drop("ROOM")
        assert r.status_code == 200, r.text
        assert r.json()["room"]["voucher"]["code"] == "ROOM"
        event = await viewer.next("voucher.dropped")
        assert event["voucher"] == {
            "shop_id": seller.shop.id,
            "code": "ROOM",
            "kind": "percent",
            "value": 1000,
            "currency": "USD",
            "min_spend": 0,
            "max_discount": None,
            "budget": 100,
            "ends_ms": event["voucher"]["ends_ms"],
            "live_only": True,
        }
        # A viewer who joins later sees the one dropped last in the room's snapshot.
        assert (await drop("SHOPWIDE")).status_code == 200
        late = await WsViewer.open(server.base_url, room_id)
        try:
            await late.hello(sessions.issue()[1])
            snapshot = await late.next("snapshot")
            assert snapshot["room"]["voucher"]["code"] == "SHOPWIDE"
            assert snapshot["room"]["voucher"]["live_only"] is False
        finally:
            await late.close()
    finally:
        await viewer.close()
