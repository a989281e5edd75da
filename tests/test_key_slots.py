"""Every Redis Function call a running server makes names keys of one Redis Cluster slot
(issue 19: a Function's keys must hash to one slot, or a cluster refuses the call). The test
watches a real ``livecart serve`` with MONITOR while a scenario touches every kind of state:
a room, its bag and chat, a flash deal reserved and paid (and its order written by the
pipeline), a cart checked out and paid, a SKU's waitlist, an auction bid on and a giveaway
entered; then it checks the declared keys of every FCALL it saw, and that each library it
loads was called."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import defaultdict

import httpx
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from kernel.redis_client import is_cluster
from tests.conftest import PREFIX, SellerAccount, viewer_headers
from tests.harness import Server
from tests.helpers import (
    CARD_DECLINED,
    CARD_OK,
    checkout,
    http_flash_deal,
    http_room,
    orders_seen_by,
    poll,
    reserve,
    until_flash_deal_live,
)
from tests.source import ROOT
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

LIBRARIES = ("checkout/lua/holds.lua", "checkout/lua/shelf.lua", "checkout/lua/sandbox.lua",
             "live/lua/rooms.lua", "live/lua/auctions.lua", "live/lua/giveaways.lua")  # fmt: skip
SHIP_TO = {"name": "Ann Lee", "line1": "1 Main St", "city": "Leeds", "postal_code": "LS1 1AA",
           "country": "GB"}  # fmt: skip


def registered(path: str) -> set[str]:
    """The function names a library registers."""
    text = (ROOT / path).read_text()
    calls = r"register(?:_function)?\(\s*'((?:lc|sb)_\w+)'"
    named = r"function_name\s*=\s*'((?:lc|sb)_\w+)'"
    return set(re.findall(calls, text)) | set(re.findall(named, text))


async def watch(redis_url: str, seen: dict[str, list[list[str]]], ready: asyncio.Event) -> None:
    """Every FCALL on the server, by function: the keys it declared."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with client.monitor() as monitor:
            ready.set()
            async for command in monitor.listen():
                words = command["command"].split(" ")
                if words[0].upper() not in ("FCALL", "FCALL_RO") or len(words) < 3:
                    continue
                count = int(words[2])
                declared = words[3 : 3 + count]
                if declared and all(key.startswith(PREFIX) for key in declared):
                    seen[words[1]].append(declared)
    finally:
        await client.aclose()


async def scenario(
    http: httpx.AsyncClient, base: str, seller: SellerAccount, sessions: GuestSessions
) -> None:
    shop = seller.shop.id or 0
    room, _product, sku = await http_room(http, seller, stock=40, list_price=5000)
    _, buyer = viewer_headers(sessions)
    viewer = await WsViewer.open(base, room)
    await viewer.hello(buyer["Authorization"].removeprefix("Bearer "))
    await viewer.send(type="chat", text="hello")
    await viewer.next("chat", text="hello")
    await viewer.send(type="like", count=3)
    # A flash deal, reserved and paid; the pipeline writes its order.
    deal = await http_flash_deal(http, seller, room, sku, quantity=2, limit=2)
    await until_flash_deal_live(http, room, int(deal["deal_id"]))
    hold = await reserve(http, int(deal["deal_id"]), buyer)
    assert (await checkout(http, hold["id"], buyer, key="deal-1")).status_code == 201
    # Sold out: a declined card, a release, and the waitlist of the deal.
    _, other = viewer_headers(sessions)
    last = await reserve(http, int(deal["deal_id"]), other)
    await checkout(http, last["id"], other, key="deal-2", card=CARD_DECLINED)
    await http.post(f"/api/deals/{deal['deal_id']}/waitlist", headers=buyer)
    await http.get(f"/api/deals/{deal['deal_id']}/waitlist", headers=buyer)
    await http.delete(f"/api/deals/{deal['deal_id']}/waitlist", headers=buyer)
    await http.delete(f"/api/holds/{last['id']}", headers=other)
    await http.get(f"/api/stock?product_id={_product}")
    # A cart at list price, paid; then its SKU sold out and waited for.
    body = {"items": [{"sku_id": sku, "qty": 1}], "shop_id": shop}
    held = await http.post("/api/cart/checkout", headers=buyer, json=body)
    assert held.status_code == 201, held.text
    paid = await checkout(http, held.json()["hold"]["id"], buyer, key="cart-1", card=CARD_OK)
    assert paid.status_code == 201, paid.text
    orders = await poll(lambda: orders_seen_by(http, buyer), lambda found: len(found) >= 2)
    await http.get("/api/cart", headers=buyer)
    released = await http.post("/api/cart/checkout", headers=other, json=body)
    await http.get(f"/api/holds/{released.json()['hold']['id']}", headers=other)
    await http.delete(f"/api/holds/{released.json()['hold']['id']}", headers=other)
    for order in orders:  # the deal's back into the deal, the cart's onto the shelf
        cancel = await http.post(
            f"/api/orders/{order['id']}/cancel", headers=seller.headers, json={}
        )
        assert cancel.status_code == 200, cancel.text
    await http.post(f"/api/skus/{sku}/waitlist", headers=buyer, json={"room_id": room})
    await http.get(f"/api/skus/{sku}/waitlist", headers=buyer)
    await http.delete(f"/api/skus/{sku}/waitlist", headers=buyer)
    # An auction bid on by a bidder with a card on file, and its lot's waitlist.
    terms = {"sku_id": sku, "start_price": 1000, "duration_s": 60}
    made = await http.post(f"/api/rooms/{room}/auctions", headers=seller.headers, json=terms)
    assert made.status_code == 201, made.text
    aid = made.json()["auction"]["auction_id"]
    await http.put(
        "/api/payment-method", headers=buyer, json={"card": CARD_OK, "shipping": SHIP_TO}
    )
    bid = await http.post(
        f"/api/rooms/{room}/auctions/{aid}/bids", headers=buyer, json={"amount": 1200}
    )
    assert bid.status_code == 201, bid.text
    await http.post(f"/api/rooms/{room}/auctions/{aid}/waitlist", headers=buyer, json={})
    # A giveaway entered and closed early (its draw follows on the node's tick).
    gift = {"sku_id": sku, "duration_s": 60}
    started = await http.post(f"/api/rooms/{room}/giveaways", headers=seller.headers, json=gift)
    assert started.status_code == 201, started.text
    gid = started.json()["giveaway"]["giveaway_id"]
    entered = await http.post(f"/api/rooms/{room}/giveaways/{gid}/entries", headers=buyer)
    assert entered.status_code == 200, entered.text
    await http.post(f"/api/rooms/{room}/giveaways/{gid}/close", headers=seller.headers)

    async def drawn() -> dict[str, object]:
        r = await http.get(f"/api/rooms/{room}/giveaways/{gid}")
        found: dict[str, object] = r.json()["giveaway"]
        return found

    await poll(drawn, lambda g: g["state"] != "open", within_s=30)
    # A ban, and the room's end (which closes the auction).
    await http.put(f"/api/rooms/{room}/bans/someone-else", headers=seller.headers)
    await http.post(f"/api/rooms/{room}/end", headers=seller.headers)

    async def auction() -> dict[str, object]:
        r = await http.get(f"/api/rooms/{room}/auctions/{aid}")
        found: dict[str, object] = r.json()["auction"]
        return found

    await poll(auction, lambda a: a["state"] == "sold", within_s=30)  # charged on file
    await viewer.close()


async def test_every_function_call_names_keys_of_one_slot(
    server: Server,
    http: httpx.AsyncClient,
    redis_url: str,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    if is_cluster(redis_url):  # MONITOR sees one node; the cluster itself refuses CROSSSLOT
        pytest.skip("on a cluster, every test that calls a Function is this check")
    seen: dict[str, list[list[str]]] = defaultdict(list)
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch(redis_url, seen, ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        await scenario(http, server.base_url, seller, sessions)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    crossing = {
        name: keys
        for name, calls in seen.items()
        for keys in calls
        if len({key_slot(key.encode()) for key in keys}) > 1
    }
    assert crossing == {}, crossing
    called = set(seen)
    for library in LIBRARIES:
        names = registered(library)
        assert names, library
        assert names & called, f"no function of {library} was called: {sorted(names)}"
    every = set().union(*(registered(library) for library in LIBRARIES))
    print(
        f"{sum(map(len, seen.values()))} calls of {len(called)} functions, each in one slot; "
        f"not called by this scenario: {sorted(every - called)}"
    )
