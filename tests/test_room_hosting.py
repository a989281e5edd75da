"""Rooms nobody hosts end by themselves: on a node that ends a room after two seconds without
its creator connected or its video on, an abandoned room ends (viewers are told why, SQL says
ended, its deal stops), while a room whose creator has the studio open stays live."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kernel.db import Database
from tests.conftest import PREFIX, SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import http_flash_deal, http_room, make_seller
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

UNHOSTED_END_S = 4


@pytest.fixture(scope="module")
def impatient_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Its own key prefix: its sweeper would otherwise end every other test's rooms too."""
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("unhosted") / "server.log",
        LIVECART_REDIS_PREFIX=f"{PREFIX}-unhosted",
        LIVECART_ROOM_UNHOSTED_END_S=str(UNHOSTED_END_S),
        LIVECART_SWEEP_INTERVAL_MS="200",
    )
    yield running
    stop_server(running)


@pytest.fixture
async def http(impatient_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=impatient_server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def creator(db: Database) -> SellerAccount:
    return await make_seller(db, "Absent Creator")


async def watch(server: Server, room: int, sessions: GuestSessions) -> WsViewer:
    _, token = sessions.issue()
    viewer = await WsViewer.open(server.base_url, room)
    await viewer.hello(token)
    return viewer


async def test_a_room_nobody_hosts_ends_and_one_whose_creator_is_there_stays_live(
    impatient_server: Server,
    http: httpx.AsyncClient,
    creator: SellerAccount,
    sessions: GuestSessions,
) -> None:
    hosted, _, _ = await http_room(http, creator)
    abandoned, _, sku = await http_room(http, creator)
    deal = await http_flash_deal(http, creator, abandoned, sku)
    studio = await WsViewer.open(impatient_server.base_url, hosted)
    assert (await studio.hello(creator.token))["role"] == "creator"
    watcher = await watch(impatient_server, abandoned, sessions)
    try:
        # A guest watching does not host it: the room ends, and its viewers are told why.
        ended = await watcher.next("room.ended", within=UNHOSTED_END_S * 10)
        assert ended["reason"] == "unhosted"
        # Not before its time: the room went unhosted when it was made.
        made = (await http.get(f"/api/rooms/{abandoned}")).json()["room"]["created_ms"]
        assert ended["ms"] - made >= UNHOSTED_END_S * 1000
        deal_ended = watcher.of("deal.ended")
        assert [d["deal_id"] for d in deal_ended] == [deal["deal_id"]]
        assert deal_ended[0]["reason"] == "room_ended"
        record = (await http.get(f"/api/rooms/{abandoned}")).json()["room"]
        assert record["status"] == "ended"
        stock = (await http.get(f"/api/deals/{deal['deal_id']}")).json()["deal"]
        # Over: ended, or already settled (with no hold open, the node settles it at once;
        # CI saw "settled" once, a race this assertion lost).
        assert stock["status"] in ("ended", "settled"), stock

        # A room opened after that one ended has gone unhosted for the whole timeout by the
        # time it ends too; all that while the creator's room stayed live.
        later, _, _ = await http_room(http, creator)
        latecomer = await watch(impatient_server, later, sessions)
        await latecomer.next("room.ended", within=UNHOSTED_END_S * 10)
        await latecomer.close()
        assert (await http.get(f"/api/rooms/{hosted}")).json()["room"]["status"] == "live"
        assert not studio.of("room.ended")

        # Once its creator leaves, it ends as well.
        remaining = await watch(impatient_server, hosted, sessions)
        await studio.close()
        gone = await remaining.next("room.ended", within=UNHOSTED_END_S * 10)
        assert gone["reason"] == "unhosted"
        await remaining.close()
    finally:
        await studio.close()
        await watcher.close()
