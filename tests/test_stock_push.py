"""Stock is pushed to rooms (decision 0048): a reservation or a release tells the deal's room at
once, on every node that serves it, without waiting for the room's tick.

The two nodes here tick once an hour (the first tick runs at start-up, before the room exists)
and keep their rooms under a keyspace of their own, so no other test server's sweep moves these
rooms: every stock figure and sold-out a viewer sees here was pushed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from kernel.clock import now_ms
from tests.conftest import PREFIX, WS_ENV, SellerAccount, start_server, viewer_headers
from tests.harness import Server, stop_server
from tests.helpers import http_flash_deal, http_room, until
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

TICK_S = 3600  # the rooms' tick, out of any test's reach
WITHIN_S = 20  # how long a pushed message may take on a busy test machine


@pytest.fixture(scope="module")
def untick_nodes(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    env = {**WS_ENV, "LIVECART_ROOM_TICK_S": str(TICK_S), "LIVECART_REDIS_PREFIX": f"{PREFIX}push"}
    nodes: list[Server] = []
    try:
        for name in ("a", "b"):
            log = tmp_path_factory.mktemp(f"push-{name}") / "server.log"
            nodes.append(start_server(redis_url, database_url, log, **env))
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            stop_server(node)


@pytest.fixture
async def clients(
    untick_nodes: tuple[Server, Server],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    a, b = untick_nodes
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=30) as http_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=30) as http_b,
    ):
        yield http_a, http_b


async def until_started(deal: dict[str, Any]) -> None:
    """Wait out the deal's countdown on this machine's clock (Redis's, which opens the deal, is
    the same one here). No tick moves the room, so the room cannot be asked."""

    async def started() -> bool:
        return now_ms() >= deal["starts_ms"]

    await until(started, f"deal {deal['deal_id']} started", within=30)


async def reserve_once_live(
    http: httpx.AsyncClient, deal_id: int, buyer: dict[str, str]
) -> dict[str, Any]:
    """Reserve one unit once the deal takes reservations."""
    held: list[dict[str, Any]] = []

    async def reserved() -> bool:
        r = await http.post(f"/api/deals/{deal_id}/reserve", headers=buyer, json={"qty": 1})
        if r.status_code == 201:
            held.append(r.json()["hold"])
            return True
        assert r.json()["code"] == "deal_not_live", r.text
        return False

    await until(reserved, f"deal {deal_id} reserving", within=30)
    return held[0]


def late_ms(since: float) -> int:
    return round((time.monotonic() - since) * 1000)


async def test_stock_and_sold_out_reach_both_nodes_without_a_tick(
    untick_nodes: tuple[Server, Server],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    a, b = untick_nodes
    http_a, _ = clients
    room, _, sku = await http_room(http_a, seller)
    viewers = [await WsViewer.open(a.base_url, room), await WsViewer.open(b.base_url, room)]
    for v in viewers:
        await v.hello(sessions.issue()[1])
        await v.next("holds")
    made = await http_flash_deal(http_a, seller, room, sku, quantity=2, limit=1)
    deal = made["deal_id"]
    (_, first), (_, second) = viewer_headers(sessions), viewer_headers(sessions)
    await until_started(made)

    # Reserved through node A: viewers on A and on B see the stock fall, then the sell-out.
    await reserve_once_live(http_a, deal, first)
    since = time.monotonic()
    for v in viewers:
        await v.next("deal.live", deal_id=deal, within=WITHIN_S)
        await v.next("deal.stock", deal_id=deal, left=1, within=WITHIN_S)
    stock_ms = late_ms(since)
    hold = await reserve_once_live(http_a, deal, second)
    since = time.monotonic()
    for v in viewers:
        await v.next("deal.sold_out", deal_id=deal, within=WITHIN_S)
    sold_out_ms = late_ms(since)
    for v in viewers:
        await v.next("deal.stock", deal_id=deal, left=0, within=WITHIN_S)

    # Released through node B: the deal is back on sale for both.
    since = time.monotonic()
    assert (await clients[1].delete(f"/api/holds/{hold['id']}", headers=second)).status_code == 204
    for v in viewers:
        await v.next("deal.restocked", deal_id=deal, left=1, within=WITHIN_S)
    back_ms = late_ms(since)
    for v in viewers:
        assert len(v.of("deal.sold_out")) == 1  # committed once, whichever node moved it
        await v.close()
    print(f"tick {TICK_S} s: stock {stock_ms} ms, sold out {sold_out_ms} ms, back {back_ms} ms")


async def test_a_buy_over_the_websocket_sells_out_at_once(
    untick_nodes: tuple[Server, Server],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    seller: SellerAccount,
    sessions: GuestSessions,
) -> None:
    """The buyer's own node is told through the bus too: a viewer there and one on the other
    node see the last unit go."""
    a, b = untick_nodes
    http_a, _ = clients
    room, _, sku = await http_room(http_a, seller)
    buyer, watcher = await WsViewer.open(b.base_url, room), await WsViewer.open(a.base_url, room)
    for v in (buyer, watcher):
        await v.hello(sessions.issue()[1])
        await v.next("holds")
    made = await http_flash_deal(http_a, seller, room, sku, quantity=1, limit=1)
    deal = made["deal_id"]
    await until_started(made)

    async def bought() -> bool:
        ref = f"buy-{time.monotonic_ns()}"
        await buyer.send(type="buy", deal_id=deal, qty=1, request_id=ref)
        answer = await buyer.answer(ref)
        assert answer["type"] == "hold.granted" or answer["code"] == "deal_not_live", answer
        return bool(answer["type"] == "hold.granted")

    await until(bought, f"deal {deal} sold over the websocket", within=30)
    since = time.monotonic()
    for v in (buyer, watcher):
        await v.next("deal.sold_out", deal_id=deal, within=WITHIN_S)
    print(f"tick {TICK_S} s: sold out over the websocket in {late_ms(since)} ms")
    await buyer.close()
    await watcher.close()
