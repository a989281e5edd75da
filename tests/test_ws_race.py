"""A flash deal raced over websockets: 1,000 viewers, 50 units, everyone taps Buy the moment the
deal goes live. Exactly 50 holds, and every viewer hears it sold out."""

from __future__ import annotations

import asyncio
import time

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


@pytest.mark.slow
@pytest.mark.xdist_group("races")
async def test_thousand_bidders_in_the_last_seconds_of_an_anti_snipe_auction(
    storm_server: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """1,000 viewers on real websockets, each with a card on file, bid at once 1.5 s before
    the close of a standard auction with a 5 s anti-snipe window: every accepted bid moves the
    close, the auction closes once bids stop, the winner is the highest maximum accepted (the
    earliest of equals, by the room's log order), and every viewer saw the same final price."""
    room, _, sku = await http_room(http, seller, stock=3)
    card = {"card": "4242424242424242"}
    viewers: list[tuple[str, WsViewer]] = []
    for _ in range(0, VIEWERS, 100):  # join in waves, as a room fills up
        people = [sessions.issue() for _ in range(100)]
        await asyncio.gather(
            *(
                http.put("/api/payment-method", headers={"Authorization": f"Bearer {t}"}, json=card)
                for _, t in people
            )
        )
        wave = await asyncio.gather(
            *(WsViewer.open(storm_server.base_url, room) for _ in range(100))
        )
        await asyncio.gather(*(v.hello(t) for v, (_, t) in zip(wave, people, strict=True)))
        viewers += [(user, v) for (user, _), v in zip(people, wave, strict=True)]
    body = {"sku_id": sku, "start_price": 1000, "duration_s": 10, "snipe_s": 5}
    made = await http.post(f"/api/rooms/{room}/auctions", headers=seller.headers, json=body)
    assert made.status_code == 201, made.text
    aid, first_end = made.json()["auction"]["auction_id"], made.json()["auction"]["ends_ms"]
    maximums = {user: 1000 + 50 * (n % 400) for n, (user, _) in enumerate(viewers)}

    # 1.5 s before the close by the server's clock (which closes it): one ping gives
    # this process's offset from it, then the bids leave at that moment.
    probe = viewers[0][1]
    sent = time.time() * 1000
    await probe.send(type="ping", client_ms=int(sent))
    pong = await probe.next("time", client_ms=int(sent))
    offset = pong["server_ms"] - (sent + time.time() * 1000) / 2
    await asyncio.sleep(max(0.0, (first_end - 1500 - offset) / 1000 - time.time()))
    await asyncio.gather(
        *(
            v.send(type="bid", auction_id=aid, amount=maximums[user], ref=f"bid-{user}")
            for user, v in viewers
        )
    )
    answers = await asyncio.gather(*(v.answer(f"bid-{user}", within=60) for user, v in viewers))
    accepted = {
        user: a["bid"]["seq"]
        for (user, _), a in zip(viewers, answers, strict=True)
        if a["type"] == "bid.accepted"
    }
    refused = {a["code"] for a in answers if a["type"] != "bid.accepted"}
    assert accepted and refused <= {"bid_too_low", "auction_closed"}, refused
    closes = await asyncio.gather(*(v.next("auction.closed", within=60) for _, v in viewers))
    assert len({(c["seq"], c["auction"]["hammer_price"]) for c in closes}) == 1
    final = closes[0]["auction"]
    assert final["ends_ms"] > first_end  # the late bids moved the close
    leader = min(accepted, key=lambda u: (-maximums[u], accepted[u]))
    assert final["winner"] == leader
    bids = viewers[0][1].of("auction.bid")
    assert len(bids) == len(accepted) and all(e["ms"] < final["ends_ms"] for e in bids)
    await asyncio.gather(*(v.close() for _, v in viewers))
