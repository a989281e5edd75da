"""An idle room costs a move a report period, not one a tick (decision 0051): between its
viewer reports, the node's ticker leaves a watched room alone unless events reached it, a deal's
edge is near or an auction or giveaway is open; stock changes come as nudges (decision 0048).

The node here has a keyspace of its own, so its one room is all its ticker moves, and
``livecart_room_moves`` (on /metrics) counts every move it makes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import PREFIX, WS_ENV, SellerAccount, start_server, viewer_headers
from tests.harness import Server, stop_server
from tests.helpers import http_flash_deal, http_room, until
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

TICK_S, REPORT_S = 0.1, 1.0  # the defaults, spelled out: ten ticks to a report


@pytest.fixture(scope="module")
def lone_node(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {
        **WS_ENV,
        "LIVECART_ROOM_TICK_S": str(TICK_S),
        "LIVECART_ROOM_REPORT_S": str(REPORT_S),
        "LIVECART_REDIS_PREFIX": f"{PREFIX}idle",
    }
    node = start_server(redis_url, database_url, tmp_path_factory.mktemp("idle") / "s.log", **env)
    yield node
    stop_server(node)


@pytest.fixture
async def http(lone_node: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=lone_node.base_url, timeout=30) as client:
        yield client


async def moves(http: httpx.AsyncClient) -> int:
    metrics = (await http.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("livecart_room_moves "))
    return int(float(line.split()[1]))


async def test_an_idle_room_is_moved_once_a_report_not_every_tick(
    lone_node: Server, http: httpx.AsyncClient, seller: SellerAccount, sessions: GuestSessions
) -> None:
    room, _, sku = await http_room(http, seller)
    viewer = await WsViewer.open(lone_node.base_url, room)
    await viewer.hello(sessions.issue()[1])
    await viewer.next("holds")
    made = await http_flash_deal(
        http, seller, room, sku, quantity=5, limit=1, countdown_s=10, duration_s=600
    )
    # The deal's start is an edge: the room is moved every tick near it, and goes live.
    await viewer.next("deal.live", deal_id=made["deal_id"], within=20)

    # Now nothing happens in the room for a while (its deal ends in ten minutes).
    before, since = await moves(http), time.monotonic()
    counted: list[int] = []

    async def three_more() -> bool:
        counted.append(await moves(http) - before)
        return counted[-1] >= 3

    await until(three_more, "three more moves of the room", within=30)
    elapsed = time.monotonic() - since
    # A move a report (and one in flight when counting began); every tick would have made
    # the three in 0.3 s. A slow machine only stretches the time, which loosens the bound.
    assert counted[-1] <= elapsed / REPORT_S + 2, (counted[-1], elapsed)

    # A reservation still reaches the idle room at once: its nudge moves it.
    _, buyer = viewer_headers(sessions)
    held = await http.post(f"/api/deals/{made['deal_id']}/reserve", headers=buyer, json={"qty": 1})
    assert held.status_code == 201, held.text
    await viewer.next("deal.stock", deal_id=made["deal_id"], left=4, within=20)
    await viewer.close()
