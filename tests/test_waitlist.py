"""A sold-out flash deal's waitlist against a running server: units that come back go to the
people waiting, one each, in the order they joined, before anyone else can tap; a lapsed hold
is handed on, and the waiting viewer is told on its websocket."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from checkout.holds import HoldStore
from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    assert_error,
    http_flash_deal,
    http_room,
    reserve,
    until,
    until_flash_deal_live,
)
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage
Headers = dict[str, str]


async def _sold_out_deal(
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    units: int,
    keep: HoldStore | None = None,
) -> tuple[int, int, list[tuple[dict[str, Any], Headers]]]:
    """A live deal whose ``units`` are all held. With ``keep``: each hold is kept from lapsing
    by a payment under way (its attempt named after the hold), until ``let_lapse``."""
    room, _product, sku = await http_room(http, seller, stock=units + 5)
    deal = await http_flash_deal(http, seller, room, sku, quantity=units, limit=1)
    deal_id = int(deal["deal_id"])
    await until_flash_deal_live(http, room, deal_id)
    early = await http.post(f"/api/deals/{deal_id}/waitlist", headers=viewer_headers(sessions)[1])
    assert_error(early, 409, "not_sold_out")
    holders = []
    for _ in range(units):
        buyer_id, buyer = viewer_headers(sessions)
        hold = await reserve(http, deal_id, buyer)
        if keep is not None:
            await keep.begin_payment(hold["id"], buyer_id, f"keep-{hold['id']}")
        holders.append(({**hold, "buyer": buyer_id}, buyer))
    return room, deal_id, holders


async def let_lapse(holds: HoldStore, holders: list[tuple[dict[str, Any], Headers]]) -> None:
    """The payments keeping the holds fail: each goes back to its own deadline, long past."""
    for hold, _ in holders:
        await holds.payment_failed(hold["id"], hold["buyer"], f"keep-{hold['id']}")


async def _waitlist(http: httpx.AsyncClient, deal_id: int, who: Headers) -> dict[str, Any]:
    r = await http.get(f"/api/deals/{deal_id}/waitlist", headers=who)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["waitlist"]
    return found


async def test_fifty_waiting_ten_released_the_first_ten_get_them_in_order(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    _room, deal_id, holders = await _sold_out_deal(http, seller, sessions, 10)
    waiters = [viewer_headers(sessions)[1] for _ in range(50)]

    async def join(who: Headers) -> int:
        r = await http.post(f"/api/deals/{deal_id}/waitlist", headers=who)
        assert r.status_code == 201, r.text
        place: int = r.json()["waitlist"]["place"]
        return place

    places = await asyncio.gather(*(join(w) for w in waiters))
    assert sorted(places) == list(range(1, 51))
    assert await join(waiters[0]) == places[0]  # joining again keeps the place
    in_line = [w for _, w in sorted(zip(places, waiters, strict=True), key=lambda p: p[0])]
    # The ten holders let go at once: each unit goes to the next in line, never to the pool.
    released = await asyncio.gather(
        *(http.delete(f"/api/holds/{hold['id']}", headers=buyer) for hold, buyer in holders)
    )
    assert all(r.status_code == 204 for r in released), [r.text for r in released]
    late = await http.post(
        f"/api/deals/{deal_id}/reserve", headers=viewer_headers(sessions)[1], json={}
    )
    assert_error(late, 409, "sold_out")
    first_ten = [await _waitlist(http, deal_id, w) for w in in_line[:10]]
    assert all(f["place"] == 0 and len(f["holds"]) == 1 for f in first_ten)
    numbers = [int(f["holds"][0]["id"].split("-")[1]) for f in first_ten]
    assert numbers == sorted(numbers)  # handed out in the order of the list
    rest = [await _waitlist(http, deal_id, w) for w in in_line[10:]]
    assert [f["place"] for f in rest] == list(range(1, 41))
    assert all(f["holds"] == [] for f in rest)
    left = (await http.delete(f"/api/deals/{deal_id}/waitlist", headers=in_line[10])).status_code
    assert left == 204 and (await _waitlist(http, deal_id, in_line[11]))["place"] == 1


async def test_a_lapsed_hold_goes_to_the_next_in_line_who_is_told(
    tight_server: Server, sessions: GuestSessions, seller: SellerAccount, holds: HoldStore
) -> None:
    """On a node with two-second holds: the holder lets the hold lapse, the first in line is
    handed the unit and told over the websocket; when that lapses too, the second is."""
    async with httpx.AsyncClient(base_url=tight_server.base_url, timeout=30) as http:
        room, deal_id, holders = await _sold_out_deal(http, seller, sessions, 1, keep=holds)
        viewers = []
        for _ in range(2):
            buyer_id, headers = viewer_headers(sessions)
            v = await WsViewer.open(tight_server.base_url, room)
            await v.hello(headers["Authorization"].removeprefix("Bearer "))
            r = await http.post(f"/api/deals/{deal_id}/waitlist", headers=headers)
            assert r.status_code == 201, r.text
            viewers.append((buyer_id, headers, v))
        await let_lapse(holds, holders)
        first = await viewers[0][2].next("waitlist.offered", within=30)
        assert first["deal_id"] == deal_id and first["hold"]["qty"] == 1
        assert not viewers[1][2].of("waitlist.offered")
        second = await viewers[1][2].next("waitlist.offered", within=30)
        assert second["hold"]["id"] != first["hold"]["id"]
        for _, _, v in viewers:
            await v.close()


async def test_fifty_waiting_ten_lapsing_holds_the_first_ten_get_them_in_order(
    tight_server: Server, sessions: GuestSessions, seller: SellerAccount, holds: HoldStore
) -> None:
    """On a node with two-second holds: ten holds lapse; the units go to the first ten in
    line, one each, in the order they joined (the deal's offers, in order), and none reaches
    the open pool meanwhile. The holds are kept from lapsing while the line forms (a payment
    under way extends a hold), then their payments fail past their deadline: they lapse then,
    whatever the machine's speed."""
    async with httpx.AsyncClient(base_url=tight_server.base_url, timeout=60) as http:
        _room, deal_id, holders = await _sold_out_deal(http, seller, sessions, 10, keep=holds)
        places = {}
        for buyer, who in (viewer_headers(sessions) for _ in range(50)):
            r = await http.post(f"/api/deals/{deal_id}/waitlist", headers=who)
            assert r.status_code == 201, r.text
            places[buyer] = r.json()["waitlist"]["place"]
        assert sorted(places.values()) == list(range(1, 51))
        in_line = sorted(places, key=lambda b: places[b])
        await let_lapse(holds, holders)

        async def ten_offered() -> bool:
            return len(await holds.offers_after(deal_id, "0")) >= 10

        await until(ten_offered, "ten lapsed units handed on", 30)
        offered = [buyer for _, _, buyer in await holds.offers_after(deal_id, "0")]
        assert offered[:10] == in_line[:10]
        # Later offers (the first ten's holds lapse in turn) go on down the line, in order.
        assert offered == in_line[: len(offered)]
        late = await http.post(
            f"/api/deals/{deal_id}/reserve", headers=viewer_headers(sessions)[1], json={}
        )
        assert_error(late, 409, "sold_out")  # nothing reached the open pool
