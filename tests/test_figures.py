"""A room's figures for its creator, against a running ``livecart serve`` with real websocket
viewers: the viewer count leaves out the creator's own connections, the peak stays at the most
seen at once (and outlives the room in SQL), and orders, units, GMV and conversion follow the
sales of the room's deals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kernel.db import Database
from live.models import LiveRoom
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import http_flash_deal, http_room, until_flash_deal_live
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def figures_until(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    room: int,
    done: Callable[[dict[str, Any]], bool],
    within: float = 15,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await http.get(f"/api/rooms/{room}/figures", headers=seller.headers)
        assert r.status_code == 200, r.text
        figures: dict[str, Any] = r.json()["figures"]
        if done(figures) or time.monotonic() > deadline:
            return figures
        await asyncio.sleep(0.2)


async def test_figures_count_viewers_not_the_creator_and_follow_the_sales(
    server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    db: Database,
) -> None:
    room, _product, sku = await http_room(http, seller)
    creator = await WsViewer.open(server.base_url, room)
    assert (await creator.hello(seller.token))["role"] == "creator"
    guests = [await WsViewer.open(server.base_url, room) for _ in range(3)]
    tokens = [sessions.issue() for _ in guests]
    for guest, (_, token) in zip(guests, tokens, strict=True):
        await guest.hello(token)
    counted = await guests[0].next("viewers", within=5, count=3)
    assert counted["count"] == 3  # three guests; the creator's connection is not one
    seen = await figures_until(http, seller, room, lambda f: f["peak_viewers"] >= 3)
    assert (seen["viewers"], seen["peak_viewers"]) == (3, 3)

    for guest in guests[1:]:
        await guest.close()
    after = await figures_until(http, seller, room, lambda f: f["viewers"] == 1)
    assert (after["viewers"], after["peak_viewers"]) == (1, 3)  # the peak stays

    deal = await http_flash_deal(http, seller, room, sku, quantity=5, limit=2)
    await until_flash_deal_live(http, room, deal["deal_id"])
    buyer = {"Authorization": f"Bearer {tokens[0][1]}"}
    hold = (
        await http.post(f"/api/deals/{deal['deal_id']}/reserve", headers=buyer, json={"qty": 2})
    ).json()["hold"]
    held = await figures_until(http, seller, room, lambda f: f["held"] == 2)
    assert (held["held"], held["orders"]) == (2, 0)
    paid = await http.post(
        f"/api/holds/{hold['id']}/checkout",
        headers={**buyer, "Idempotency-Key": "figures"},
        json={"card": "4242424242424242"},
    )
    assert paid.status_code == 201, paid.text
    sold = await figures_until(http, seller, room, lambda f: f["orders"] == 1)
    assert {k: sold[k] for k in ("held", "orders", "units_sold", "gmv", "buyers")} == {
        "held": 0,
        "orders": 1,
        "units_sold": 2,
        "gmv": 9800,
        "buyers": 1,
    }
    assert sold["conversion"] == pytest.approx(1 / 3, abs=1e-3)

    assert (await http.post(f"/api/rooms/{room}/end", headers=seller.headers)).status_code == 200
    ended = await figures_until(http, seller, room, lambda f: f["viewers"] == 0)
    assert (ended["viewers"], ended["peak_viewers"], ended["orders"]) == (0, 3, 1)
    async with db.session() as session:
        record = await session.get(LiveRoom, room)
        assert record is not None and record.peak_viewers == 3  # kept once Redis forgets
    other = await http.get(
        f"/api/rooms/{room}/figures", headers={"Authorization": "Bearer lc_sk_nobody"}
    )
    assert other.status_code == 401
    await guests[0].close()
    await creator.close()
