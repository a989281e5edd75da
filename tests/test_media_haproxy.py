"""Video behind deploy/haproxy.cfg: two media nodes (one process each) behind HAProxy running the
documented configuration (only its addresses changed for loopback). Each room's WHIP publisher
and WHEP viewers go through HAProxy, whose media backend hashes the room id, so they meet in
one process: every viewer decodes its room's pictures, whichever node holds the room."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kernel.db import Database
from live.media.publisher import Publisher
from tests.conftest import SellerAccount, start_server
from tests.harness import Server, free_port, stop_process, stop_server, wait_until_serving
from tests.helpers import http_room, make_seller
from tests.mediaclient import WhepViewer, node_figures
from tests.test_deploy import DEPLOY, haproxy
from tests.test_media import MEDIA_ENV
from web.auth import GuestSessions

pytestmark = [pytest.mark.storage, pytest.mark.slow]

ROOMS = 3


def loopback_config(port: int, nodes: list[Server]) -> str:
    """deploy/haproxy.cfg with its listening address, its stats socket (a system path), its
    servers and its maxconn (200,000 needs more file descriptors than a test machine allows)
    replaced; everything else as documented."""
    config = (DEPLOY / "haproxy.cfg").read_text()
    config = re.sub(r"\n    maxconn \d+", "\n    maxconn 2000", config, count=1)
    config = config.replace("    bind :80\n", f"    bind 127.0.0.1:{port}\n")
    config = re.sub(r"\n    stats socket [^\n]*", "", config)
    config = re.sub(r"\n    server [^\n]*", "", config)
    http = "".join(f"\n    server node{n} 127.0.0.1:{s.port}" for n, s in enumerate(nodes))
    media = "".join(f"\n    server media{n} 127.0.0.1:{s.port}" for n, s in enumerate(nodes))
    config = config.replace("slowstart 10s", "slowstart 10s" + http, 1)
    return config.rstrip("\n") + media + "\n"


@pytest.fixture(scope="module")
def nodes(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    running: list[Server] = []
    try:
        for _ in range(2):
            log = tmp_path_factory.mktemp("media") / "server.log"
            env = {**MEDIA_ENV, "LIVECART_VIDEO_MAX_VIEWERS": "20"}
            running.append(start_server(redis_url, database_url, log, **env))
        yield running
    finally:
        for node in running:
            stop_server(node)


@pytest.fixture(scope="module")
def balancer(nodes: list[Server], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = haproxy()
    port = free_port()
    workdir = tmp_path_factory.mktemp("haproxy")
    config = workdir / "haproxy.cfg"
    config.write_text(loopback_config(port, nodes))
    log = workdir / "haproxy.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until_serving(port, lambda: process.poll() is not None, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
async def creator(db: Database) -> SellerAccount:
    return await make_seller(db, "Creator behind HAProxy")


@pytest.fixture
async def through(balancer: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=balancer, timeout=30) as http:
        yield http


async def test_each_rooms_publisher_and_viewers_meet_in_one_process_behind_haproxy(
    balancer: str,
    nodes: list[Server],
    through: httpx.AsyncClient,
    creator: SellerAccount,
    sessions: GuestSessions,
) -> None:
    rooms = [(await http_room(through, creator, live=False))[0] for _ in range(ROOMS)]
    publishers = [Publisher(balancer, room, creator.token, detail=False) for room in rooms]
    viewers: list[WhepViewer] = []
    try:
        for publisher in publishers:
            await publisher.start()
            assert publisher.peer_url.startswith(f"{balancer}/whip/")
        for room in rooms:
            for _ in range(2):
                viewers.append(await WhepViewer.open(balancer, room, sessions.issue()[1]))
        for viewer in viewers:  # pictures: the viewer reached the process of its publisher
            assert len(await viewer.wait_for_frames(5, within=30)) >= 5
        held = []
        for node in nodes:
            async with httpx.AsyncClient(base_url=node.base_url, timeout=30) as direct:
                held.append((await node_figures(direct))["livecart_video_publishers"])
        assert sum(held) == ROOMS, held  # each publisher in one process, none twice
        print(f"\nrooms' publishers per media node: {held}")
    finally:
        for viewer in viewers:
            await viewer.close()
        for publisher in publishers:
            await publisher.stop()


async def test_every_request_of_a_room_goes_to_one_node_and_rooms_spread_over_both(
    balancer: str, through: httpx.AsyncClient
) -> None:
    """The media backend's hash, without video: whatever is asked of /whep/<room> (here an
    unknown session, 404) is answered by one node per room (the process tag that starts
    X-Request-Id), and 20 rooms use both nodes (all on one: odds 2 in a million)."""
    node_of: dict[int, set[str]] = {}
    for room in range(1, 21):
        for _ in range(5):
            r = await through.delete(f"/whep/{room}/no-such-session")
            node_of.setdefault(room, set()).add(r.headers["X-Request-Id"][:8])
    assert all(len(tags) == 1 for tags in node_of.values()), node_of
    assert len(set().union(*node_of.values())) == 2, node_of
