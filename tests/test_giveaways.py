"""Giveaways (decision 0032) against a running server: one entry each under a storm, the draw
recomputed from nothing but what the server publishes, eligibility, and the prize claimed as a
$0 order through the one checkout."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest

from tests.conftest import SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import CARD_OK, assert_error, checkout, http_room, orders_seen_by, poll
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


async def _open(http: httpx.AsyncClient, seller: SellerAccount, **terms: Any) -> tuple[int, int]:
    room, _product, sku = await http_room(http, seller, stock=2)
    body = {"sku_id": sku, "duration_s": 10, **terms}
    made = await http.post(f"/api/rooms/{room}/giveaways", headers=seller.headers, json=body)
    assert made.status_code == 201, made.text
    return room, made.json()["giveaway"]["giveaway_id"]


async def test_two_thousand_entrants_one_winner_anyone_can_recompute(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, gid = await _open(http, seller, duration_s=3600)
    path = f"/api/rooms/{room}/giveaways/{gid}"
    started = (await http.get(path)).json()["giveaway"]
    assert started["state"] == "open" and "seed" not in started
    commitment = started["commitment"]
    people = [viewer_headers(sessions) for _ in range(2000)]
    gate = asyncio.Semaphore(64)

    async def enter(headers: dict[str, str], times: int) -> None:
        async with gate:
            for _ in range(times):
                r = await http.post(f"{path}/entries", headers=headers)
                assert r.status_code == 200, r.text

    # Everyone taps, a tenth of them three times: one entry each all the same.
    await asyncio.gather(*(enter(h, 3 if i % 10 == 0 else 1) for i, (_, h) in enumerate(people)))
    assert (await http.get(path)).json()["giveaway"]["entries"] == 2000
    assert_error(await http.get(f"{path}/entries"), 409, "giveaway_open")
    closing = await http.post(f"{path}/close", headers=seller.headers)
    assert closing.status_code == 200, closing.text

    async def drawn() -> dict[str, Any]:
        found: dict[str, Any] = (await http.get(path)).json()["giveaway"]
        return found

    done = await poll(drawn, lambda g: g["state"] != "open", within_s=40)
    assert done["state"] == "drawn", done
    late = await http.post(f"{path}/entries", headers=viewer_headers(sessions)[1])
    assert_error(late, 409, "giveaway_closed")
    # Recompute from the published data alone: the seed matches the commitment made before
    # anyone entered, the entries match their hash, and the draw names the same winner.
    published = (await http.get(f"{path}/entries")).json()
    entries: list[str] = published["entries"]
    assert sorted(entries) == entries and len(set(entries)) == 2000
    assert {buyer for buyer, _ in people} == set(entries)
    assert hashlib.sha256(done["seed"].encode()).hexdigest() == commitment
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()
    assert digest == published["entries_hash"] == done["entries_hash"]
    pick = int(hashlib.sha256(f"{done['seed']}:{digest}".encode()).hexdigest(), 16)
    assert entries[pick % len(entries)] == done["winner"]


async def test_the_winner_claims_the_prize_as_a_free_order(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, gid = await _open(http, seller)
    path = f"/api/rooms/{room}/giveaways/{gid}"
    winner_id, winner = viewer_headers(sessions)
    v = await WsViewer.open(server.base_url, room)
    await v.hello(winner["Authorization"].removeprefix("Bearer "))
    snap = await v.next("snapshot")
    assert [g["giveaway_id"] for g in snap["giveaways"]] == [gid]
    assert (await http.post(f"{path}/entries", headers=winner)).json() == {"entries": 1}
    won = await v.next("giveaway.won", within=40)
    drawn = await v.next("giveaway.drawn")
    assert drawn["giveaway"]["winner"] == winner_id
    mine = (await http.get(path, headers=winner)).json()["giveaway"]
    assert mine["your_hold"]["id"] == won["hold"]["id"]
    paid = await checkout(http, won["hold"]["id"], winner, card=CARD_OK, key="prize")
    assert paid.status_code == 201, paid.text
    assert paid.json()["order"]["amount"] == 0
    orders = await poll(lambda: orders_seen_by(http, winner), lambda found: len(found) == 1)
    assert len(orders) == 1 and orders[0]["unit_price"] == 0
    claimed = await poll(
        lambda: _giveaway(http, path), lambda g: g["state"] == "claimed", within_s=30
    )
    assert claimed["state"] == "claimed"
    await v.close()


async def _giveaway(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    found: dict[str, Any] = (await http.get(path)).json()["giveaway"]
    return found


async def test_who_may_enter(
    server: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, gid = await _open(http, seller, eligibility="watchers", min_watch_min=1)
    never_seen = viewer_headers(sessions)[1]
    refused = assert_error(
        await http.post(f"/api/rooms/{room}/giveaways/{gid}/entries", headers=never_seen),
        409,
        "not_eligible",
    )
    assert refused["details"]["need"] == "watch"
    room, gid = await _open(http, seller, eligibility="buyers")
    refused = assert_error(
        await http.post(f"/api/rooms/{room}/giveaways/{gid}/entries", headers=never_seen),
        409,
        "not_eligible",
    )
    assert refused["details"]["need"] == "buyer"
    for bad, field in (
        ({"eligibility": "watchers"}, "min_watch_min"),
        ({"min_watch_min": 5}, "min_watch_min"),
        ({"duration_s": 5}, "duration_s"),
    ):
        r = await http.post(
            f"/api/rooms/{room}/giveaways",
            headers=seller.headers,
            json={"sku_id": 1, "duration_s": 10, **bad},
        )
        assert assert_error(r, 422, "invalid_giveaway")["details"]["field"] == field
