"""A flash deal raced over websockets: 1,000 viewers, 50 units, everyone taps Buy the moment the
deal goes live. Exactly 50 holds, and every viewer hears it sold out."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from checkout.holds import HoldStore
from tests.conftest import SellerAccount
from tests.harness import Server
from tests.helpers import http_flash_deal, http_room
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

VIEWERS = 1000
UNITS = 50


@pytest.mark.xdist_group("races")
async def test_thousand_viewers_race_for_fifty_units(
    storm_server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    holds: HoldStore,
) -> None:
    room, _, sku = await http_room(http, seller, stock=UNITS)
    viewers: list[WsViewer] = []
    for start in range(0, VIEWERS, 100):  # join in waves, as a room fills up
        wave = await asyncio.gather(
            *(WsViewer.open(storm_server.base_url, room) for _ in range(start, start + 100))
        )
        await asyncio.gather(*(v.hello(sessions.issue()[1]) for v in wave))
        viewers += wave
    deal = await http_flash_deal(http, seller, room, sku, quantity=UNITS, limit=1)
    deal_id = deal["deal_id"]

    async def race(v: WsViewer, n: int) -> str:
        await v.next("deal.live", within=60)
        await v.send(type="buy", deal_id=deal_id, qty=1, request_id=f"tap-{n}")
        reply = await v.answer(f"tap-{n}", within=60)
        return "held" if reply["type"] == "hold.granted" else str(reply["code"])

    outcomes = await asyncio.gather(*(race(v, n) for n, v in enumerate(viewers)))
    assert outcomes.count("held") == UNITS
    assert outcomes.count("sold_out") == VIEWERS - UNITS, sorted(set(outcomes))
    # Everyone hears it, including the 50 who got a unit.
    sold_out = await asyncio.gather(
        *(v.next("deal.sold_out", deal_id=deal_id, within=30) for v in viewers)
    )
    assert len({m["seq"] for m in sold_out}) == 1
    state = await holds.snapshot(deal_id)
    assert state is not None
    assert (state.available, state.held, state.sold) == (0, UNITS, 0)
    await asyncio.gather(*(v.close() for v in viewers))
