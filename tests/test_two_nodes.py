"""Two ``livecart serve`` nodes on one Redis and one database share rooms: every event made on
one node reaches viewers on the other, in sequence order, and the viewer count is the sum."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import WS_ENV, SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import http_flash_deal, http_room, until
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage


@pytest.fixture(scope="module")
def node_b(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(
        redis_url, database_url, tmp_path_factory.mktemp("node-b") / "server.log", **WS_ENV
    )
    yield running
    stop_server(running)


async def test_events_cross_nodes_in_order(
    server: Server,
    node_b: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    room, product, sku = await http_room(http, seller)
    on_a = [await WsViewer.open(server.base_url, room) for _ in range(3)]
    on_b = [await WsViewer.open(node_b.base_url, room) for _ in range(2)]
    for v in (*on_a, *on_b):
        await v.hello(sessions.issue()[1])
        await v.next("holds")

    # Made through node A: pins, a flash deal; a chat line from a viewer on node B.
    h = seller.headers
    async with httpx.AsyncClient(base_url=node_b.base_url, timeout=30) as http_b:
        for _ in range(5):
            assert (
                await http.post(f"/api/rooms/{room}/pin", headers=h, json={"product_id": product})
            ).status_code == 200
            assert (await http_b.delete(f"/api/rooms/{room}/pin", headers=h)).status_code == 200
    deal = await http_flash_deal(http, seller, room, sku, quantity=4)
    await on_b[0].send(type="chat", text="hello from node B")
    await on_a[0].send(type="chat", text="hello from node A")
    for v in (*on_a, *on_b):
        await v.next("chat", text="hello from node A")
        await v.next("chat", text="hello from node B")
    final = (await http.get(f"/api/rooms/{room}")).json()["seq"]
    for v in (*on_a, *on_b):
        await v.next("chat", seq=final)
        seqs = v.seqs()
        joined_at = v.messages[0]["seq"]
        assert seqs == list(range(joined_at + 1, final + 1)), seqs
    # Every viewer saw the same events in the same order, whichever node it is on.
    streams = [
        [
            (m["seq"], m["type"])
            for m in v.messages
            if m.get("type") != "welcome" and "seq" in m and m["type"] != "snapshot"
        ]
        for v in (*on_a, *on_b)
    ]
    tail = min(len(s) for s in streams)
    assert all(s[-tail:] == streams[0][-tail:] for s in streams)
    assert [t for _, t in streams[0][-tail:]].count("deal.scheduled") == 1
    assert deal["deal_id"] in {m["deal"]["deal_id"] for m in on_b[1].of("deal.scheduled")}

    # Viewer count is the sum over nodes: 3 + 2; one leaving node A shows on node B. The latest
    # count is what counts: on its way up to 5 the count may have been 4 already.
    for v in (on_a[0], on_b[0]):
        await until(counts(v, 5), "5 viewers over both nodes", within=10)
    await on_a[2].close()
    await until(counts(on_b[0], 4), "node B counting 4 once one left node A", within=10)
    for v in (*on_a, *on_b):
        await v.close()


def counts(viewer: WsViewer, viewers: int) -> Callable[[], Awaitable[bool]]:
    """Is the latest viewer count ``viewer`` was sent ``viewers``?"""

    async def check() -> bool:
        sent = viewer.of("viewers")
        return bool(sent) and sent[-1]["count"] == viewers

    return check


async def test_a_buy_on_one_node_is_sold_out_everywhere(
    server: Server,
    node_b: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    room, _, sku = await http_room(http, seller)
    buyer = await WsViewer.open(node_b.base_url, room)
    watcher = await WsViewer.open(server.base_url, room)
    await buyer.hello(sessions.issue()[1])
    await watcher.hello(sessions.issue()[1])
    deal = await http_flash_deal(http, seller, room, sku, quantity=1, limit=1)
    await buyer.next("deal.live", within=15)
    await buyer.send(type="buy", deal_id=deal["deal_id"], qty=1, request_id="only")
    await buyer.next("hold.granted", ref="only")
    await watcher.next("deal.sold_out", deal_id=deal["deal_id"], within=5)
    await asyncio.gather(buyer.close(), watcher.close())


async def test_one_auction_with_bidders_on_both_nodes(
    server: Server,
    node_b: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """Ten bidders on each node bid against each other until a sudden-death auction closes:
    every viewer on either node sees the same bids in the same order and the same winner and
    hammer price, and the winner, wherever connected, is the one told they won."""
    room, _product, sku = await http_room(http, seller)
    body = {"sku_id": sku, "start_price": 1000, "duration_s": 10, "mode": "sudden_death"}
    made = await http.post(f"/api/rooms/{room}/auctions", headers=seller.headers, json=body)
    assert made.status_code == 201, made.text
    aid = made.json()["auction"]["auction_id"]
    bidders: list[tuple[str, WsViewer]] = []
    for node in (server, node_b):
        for _ in range(10):
            user, token = sessions.issue()
            card = {"card": "4242424242424242"}
            auth = {"Authorization": f"Bearer {token}"}
            assert (await http.put("/api/payment-method", headers=auth, json=card)).is_success
            v = await WsViewer.open(node.base_url, room)
            await v.hello(token)
            await v.next("holds")
            bidders.append((user, v))

    async def bid_until_closed(n: int, v: WsViewer) -> None:
        amount, sent = 1000 + 50 * n, 0
        while True:
            ref = f"n{n}-{sent}"
            sent += 1
            await v.send(type="bid", auction_id=aid, amount=amount, ref=ref)
            answer = await v.answer(ref, within=30)
            if answer["type"] == "bid.accepted":
                amount = answer["bid"]["min_bid"] + 50 * (n % 4)
            elif answer["code"] in ("bid_too_low", "bid_not_higher"):
                amount = max(answer["details"].get("min_bid", 0), amount + 50)
            else:
                assert answer["code"] == "auction_closed", answer
                return
            await asyncio.sleep(0.1)  # pacing: about 200 bids a second from both nodes

    await asyncio.gather(*(bid_until_closed(n, v) for n, (_, v) in enumerate(bidders)))
    closes = [await v.next("auction.closed", within=40) for _, v in bidders]
    assert (
        len({(c["seq"], c["auction"]["winner"], c["auction"]["hammer_price"]) for c in closes}) == 1
    )
    orders = [[(e["seq"], e["auction"]["price"]) for e in v.of("auction.bid")] for _, v in bidders]
    assert all(o == orders[0] for o in orders) and len(orders[0]) > 1
    winner = closes[0]["auction"]["winner"]
    won = next(v for user, v in bidders if user == winner)
    await won.next("auction.won", within=30)
    assert [user for user, v in bidders if v.of("auction.won")] == [winner]
    for _, v in bidders:
        await v.close()


async def test_a_node_shut_down_sends_its_viewers_elsewhere_without_losing_an_event(
    server: Server,
    node_b: Server,
    http: httpx.AsyncClient,
    seller: SellerAccount,
    sessions: GuestSessions,
    redis_url: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    """Draining (docs/operations.md): SIGTERM to a node closes its websockets with 1012;
    each viewer comes back on another node with its last seq and is replayed what was said
    while it was away, in order, nothing missed or twice."""
    room, product, _ = await http_room(http, seller)
    node_c = start_server(redis_url, database_url, tmp_path / "node-c.log", **WS_ENV)
    try:
        viewers = [await WsViewer.open(node_c.base_url, room) for _ in range(3)]
        tokens = [sessions.issue()[1] for _ in viewers]
        for viewer, token in zip(viewers, tokens, strict=True):
            await viewer.hello(token)
            await viewer.next("holds")
        h = seller.headers
        pin = {"product_id": product}
        assert (await http.post(f"/api/rooms/{room}/pin", headers=h, json=pin)).status_code == 200
        for viewer in viewers:
            await viewer.next("pin")
        await asyncio.to_thread(stop_server, node_c)  # SIGTERM, as systemctl stop does
        assert [await v.closed() for v in viewers] == [1012] * 3
    finally:
        stop_server(node_c)
    # While they are away: more of the room's events, made through node A.
    for _ in range(3):
        assert (await http.delete(f"/api/rooms/{room}/pin", headers=h)).status_code == 200
        assert (await http.post(f"/api/rooms/{room}/pin", headers=h, json=pin)).status_code == 200
    final = (await http.get(f"/api/rooms/{room}")).json()["seq"]
    for viewer, token in zip(viewers, tokens, strict=True):
        back = await WsViewer.open(node_b.base_url, room)
        welcome = await back.hello(token, last_seq=viewer.last_seq)
        assert welcome["resumed"] is True
        if final > viewer.last_seq:
            await back.next("pin", seq=final)
        missed = back.seqs()
        assert missed == list(range(viewer.last_seq + 1, final + 1)), missed
        await back.close()
