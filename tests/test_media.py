"""Live video with real aiortc peers against a running ``livecart serve``: a WHIP publisher
sending the synthetic test pattern and tone, WHEP viewers decoding it, and every way a peer
ends (docs/protocol.md, "Live video")."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from kernel.db import Database
from live.media import pattern
from live.media.publisher import Publisher, WhipError
from tests.conftest import WS_ENV, SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import http_room, make_seller, poll
from tests.mediaclient import (
    WhepViewer,
    eventually,
    is_vp8_keyframe_start,
    node_figures,
    peerless_client,
    vanish,
    wait_for_figures,
)
from tests.test_follows import new_account, notifications
from tests.wsclient import WsViewer
from web.auth import GuestSessions

pytestmark = pytest.mark.storage

MEDIA_ENV = {
    **WS_ENV,
    "LIVECART_WEBRTC_ADDRESSES": "127.0.0.1",
    "LIVECART_VIDEO_MAX_VIEWERS": "4",
    # No periodic keyframes: a viewer that gets a picture at all got one made for it.
    "LIVECART_VIDEO_KEYFRAME_INTERVAL_S": "600",
    # A wide gap between asked-for keyframes, so tests can ask inside it.
    "LIVECART_VIDEO_MIN_KEYFRAME_GAP_S": "2",
    "LIVECART_VIDEO_PUBLISHER_GRACE_S": "4",
    "LIVECART_WEBRTC_CONNECT_TIMEOUT_S": "5",
    "LIVECART_VIDEO_STALL_S": "3",
}


KEYFRAME_GAP_S = float(MEDIA_ENV["LIVECART_VIDEO_MIN_KEYFRAME_GAP_S"])


def keyframes_allowed(since: float) -> int:
    """The most keyframes asked-for pictures may have made since ``since`` (monotonic): one per
    gap. Counted from the time that really passed, so a loaded machine that spreads the asks
    over several gaps is not taken for a missing throttle, and a quick one still catches it."""
    return int((time.monotonic() - since) // KEYFRAME_GAP_S) + 1


def start_media_server(redis_url: str, database_url: str, tmp: pytest.TempPathFactory) -> Server:
    return start_server(redis_url, database_url, tmp.mktemp("media") / "server.log", **MEDIA_ENV)


@pytest.fixture(scope="module")
def media_server(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_media_server(redis_url, database_url, tmp_path_factory)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
async def creator(db: Database) -> SellerAccount:
    return await make_seller(db, "Video Creator")


@pytest.fixture
async def client(media_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with peerless_client(media_server.base_url) as http:
        yield http


@dataclass
class Stage:
    """A test's media node, client and creator, with the creator's room (not live yet) and
    the guests who come to watch it."""

    server: Server
    client: httpx.AsyncClient
    creator: SellerAccount
    room: int
    sessions: GuestSessions

    def guest(self) -> str:
        """A new guest session's token."""
        return self.sessions.issue()[1]

    def publisher(self) -> Publisher:
        # Plain pattern (no noise patch): cheap to encode on a shared test machine.
        return Publisher(self.server.base_url, self.room, self.creator.token, detail=False)

    async def viewer(self, prefer: tuple[str, ...] = ()) -> WhepViewer:
        return await WhepViewer.open(self.server.base_url, self.room, self.guest(), prefer=prefer)


@pytest.fixture
async def stage(
    media_server: Server,
    client: httpx.AsyncClient,
    creator: SellerAccount,
    sessions: GuestSessions,
) -> Stage:
    room_id, _product, _sku = await http_room(client, creator, live=False)
    return Stage(media_server, client, creator, room_id, sessions)


@pytest.fixture
async def own_stage(
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    creator: SellerAccount,
    sessions: GuestSessions,
) -> AsyncIterator[Stage]:
    """A stage on a node of the test's own, which the test may stop or kill (so its client
    does not wait for the peers to go); stopped afterwards if it still runs."""
    node = start_media_server(redis_url, database_url, tmp_path_factory)
    try:
        async with httpx.AsyncClient(base_url=node.base_url, timeout=30) as http:
            room_id, _product, _sku = await http_room(http, creator, live=False)
            yield Stage(node, http, creator, room_id, sessions)
    finally:
        if node.process.poll() is None:
            stop_server(node)


async def test_viewers_decode_the_publishers_pictures_and_tone(stage: Stage) -> None:
    client, room = stage.client, stage.room
    ws = await WsViewer.open(stage.server.base_url, room)
    await ws.hello(stage.guest())
    publisher = stage.publisher()
    await publisher.start()
    assert publisher.peer_url.startswith(f"{stage.server.base_url}/whip/{room}/")
    viewers = [await stage.viewer() for _ in range(3)]
    try:
        for viewer in viewers:
            numbers = await viewer.wait_for_frames(45)
            # The publisher's own frame numbers, in order, none invented: these pictures came
            # from it, through the one encoder.
            assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
            assert max(numbers) < publisher.camera.sent
            assert numbers[-1] - numbers[0] < 2 * len(numbers)  # a few dropped at most
            await eventually(lambda v=viewer: len(v.audio) >= 50, 10, "a second of sound")
            assert abs(pattern.dominant_hz(viewer.audio[-50:]) - pattern.TONE_HZ) < 10
        figures = await node_figures(client)
        assert figures["livecart_video_viewers"] == 3
        assert figures["livecart_video_publishers"] == 1
        assert figures["livecart_webrtc_peers"] == 4
        # The room went live with the video, and its viewers were told.
        await ws.next("room.live")
        await ws.next("stream.started")
        state = (await client.get(f"/api/rooms/{room}")).json()["room"]
        assert state["status"] == "live" and state["stream"] is not None
    finally:
        for viewer in viewers:
            assert await viewer.hang_up(client) == 200
        await publisher.stop()
    ended = await ws.next("stream.ended")
    assert ended["reason"] == "stopped"
    assert (await client.get(f"/api/rooms/{room}")).json()["room"]["stream"] is None
    await ws.close()


async def test_late_joiners_start_on_keyframes_made_for_them(stage: Stage) -> None:
    publisher = stage.publisher()
    await publisher.start()
    first = await stage.viewer()
    late: list[WhepViewer] = []
    try:
        await first.wait_for_frames(60)  # two seconds into a stream with no periodic keyframes
        await asyncio.sleep(2)  # and past the keyframe gap
        since = time.monotonic()
        keyframes = (await node_figures(stage.client))["livecart_video_keyframes"]
        # Three joiners: the first once the stream is past the keyframe gap; the second once
        # the first has pictures, the third once the second is connected. The second and third
        # ask inside the first's keyframe gap (on a quick machine): deltas flow past them until
        # their shared (throttled) keyframe comes.
        late.append(await stage.viewer())
        await late[0].wait_for_frames(3)
        late.append(await stage.viewer())
        await eventually(lambda: late[1].pc.connectionState == "connected", 10, "connected")
        late.append(await stage.viewer())
        for viewer in late:
            await viewer.wait_for_frames(10)
        for viewer in late:
            assert viewer.first_video_payload is not None
            assert is_vp8_keyframe_start(viewer.first_video_payload)
            assert viewer.numbers[0] > 30  # it joined the stream where it was, not at its start
        made = (await node_figures(stage.client))["livecart_video_keyframes"] - keyframes
        # Within one gap of the first joiner's, the second and third share one keyframe
        # (three in two gaps would be unthrottled).
        assert 1 <= made <= keyframes_allowed(since)
    finally:
        for viewer in [first, *late]:
            await viewer.hang_up(stage.client)
        await publisher.stop()


async def test_keyframe_requests_are_throttled_not_one_per_request(stage: Stage) -> None:
    publisher = stage.publisher()
    await publisher.start()
    viewer = await stage.viewer()
    try:
        await viewer.wait_for_frames(15)
        receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
        ssrc = receiver.getSynchronizationSources()[0].source
        await asyncio.sleep(2.5)  # past the 2 s gap after the joiner's keyframe
        since = time.monotonic()
        before = (await node_figures(stage.client))["livecart_video_keyframes"]
        # A picture-loss report every 50 ms for 1.5 s, as from a viewer on a lossy network:
        # one keyframe per 2 s gap, not one per report (that would be about 30).
        for _ in range(30):
            await receiver._send_rtcp_pli(ssrc)
            await asyncio.sleep(0.05)
        await viewer.wait_for_frames(15)
        made = (await node_figures(stage.client))["livecart_video_keyframes"] - before
        assert 1 <= made <= keyframes_allowed(since)  # about 30 unthrottled
    finally:
        await viewer.hang_up(stage.client)
        await publisher.stop()


async def test_one_publisher_per_room_and_clear_refusals(stage: Stage, db: Database) -> None:
    client, creator, room = stage.client, stage.creator, stage.room
    sdp = {"Content-Type": "application/sdp"}
    viewer_auth = {"Authorization": f"Bearer {stage.guest()}"}
    # Nobody is broadcasting yet: watching is refused with a reason.
    refused = await client.post(f"/whep/{room}", content="v=0\r\n", headers={**sdp, **viewer_auth})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "stream_not_live"
    publisher = stage.publisher()
    await publisher.start()
    try:
        second = stage.publisher()
        with pytest.raises(WhipError) as err:
            await second.start()
        assert err.value.status == 409 and "already_publishing" in err.value.body

        other = await make_seller(db, "Not The Creator")
        stranger = Publisher(stage.server.base_url, room, other.token, detail=False)
        with pytest.raises(WhipError) as err:
            await stranger.start()
        assert err.value.status == 404

        creator_auth = {"Authorization": f"Bearer {creator.token}"}
        for path, auth in ((f"/whip/{room}", creator_auth), (f"/whep/{room}", viewer_auth)):
            bad = await client.post(path, content="hello", headers={**sdp, **auth})
            assert bad.status_code == 400, bad.text
            assert bad.json()["error"]["code"] == "invalid_sdp"
            wrong_type = await client.post(path, content="v=0", headers=auth)
            assert wrong_type.status_code == 415
        head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        refusals = {
            "no_video": "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
            "unsupported_codec": (
                "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=recvonly\r\na=rtpmap:102 H264/90000\r\n"
            ),
            # It parses and offers VP8, yet the peer connection cannot use it.
            "invalid_sdp": (
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
            ),
        }
        for code, media in refusals.items():
            answer = await client.post(
                f"/whep/{room}", content=head + media, headers={**sdp, **viewer_auth}
            )
            assert answer.status_code == 400 and answer.json()["error"]["code"] == code, code
        unsigned = await client.post(f"/whep/{room}", content="v=0", headers=sdp)
        assert unsigned.status_code == 401
        missing = await client.post("/whep/999999", content="v=0", headers={**sdp, **viewer_auth})
        assert missing.status_code == 404
        patch = await client.patch(f"{publisher.peer_url}", headers=creator_auth)
        assert patch.status_code == 405
        not_yours = await client.delete(publisher.peer_url, headers=other.headers)
        assert not_yours.status_code == 404
        assert (await client.delete(publisher.peer_url, headers=viewer_auth)).status_code == 401
        # None of that touched the broadcast.
        figures = await node_figures(client)
        assert figures["livecart_video_publishers"] == 1
        assert figures["livecart_webrtc_peers"] == 1
    finally:
        await publisher.stop()


async def test_viewers_beyond_the_node_limit_get_503_with_retry_after(stage: Stage) -> None:
    publisher = stage.publisher()
    await publisher.start()
    viewers = [await stage.viewer() for _ in range(4)]
    try:
        with pytest.raises(WhipError) as err:
            await stage.viewer()
        assert err.value.status == 503 and "too_many_viewers" in err.value.body
        refused = await stage.client.post(
            f"/whep/{stage.room}",
            content="v=0",
            headers={
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {stage.guest()}",
            },
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "10"
        # A place freed is a place taken.
        await viewers.pop().hang_up(stage.client)
        viewers.append(await stage.viewer())
        await viewers[-1].wait_for_frames(5)
    finally:
        for viewer in viewers:
            await viewer.hang_up(stage.client)
        await publisher.stop()


async def test_peers_that_vanish_are_cleaned_up_without_leaks(stage: Stage) -> None:
    client = stage.client
    idle_tasks = (await node_figures(client))["livecart_asyncio_tasks"]
    for _ in range(2):
        publisher = stage.publisher()
        await publisher.start()
        viewers = [await stage.viewer() for _ in range(3)]
        for viewer in viewers:
            await viewer.wait_for_frames(5)
        await viewers[0].hang_up(client)  # DELETE
        await viewers[1].close()  # closes its connection without a DELETE
        await wait_for_figures(client, video_viewers=1, webrtc_peers=2)
        await publisher.pc.close()  # the creator's connection drops, no DELETE
        # The viewer left is hung up once the creator's grace period is over.
        await eventually(
            lambda v=viewers[2]: v.pc.connectionState == "closed", 15, "viewer hung up"
        )
        await viewers[2].close()
    # A bound for a loaded machine, not a pace: CI's cluster step (two cores, -n auto) once
    # still had 3 tasks above the idle count 15 s after the last peer closed.
    await wait_for_figures(
        client,
        within=60,
        webrtc_peers=0,
        video_viewers=0,
        video_publishers=0,
        asyncio_tasks=idle_tasks,
    )


async def test_a_creator_who_reconnects_within_the_grace_keeps_the_viewers(stage: Stage) -> None:
    ws = await WsViewer.open(stage.server.base_url, stage.room)
    await ws.hello(stage.guest())
    first = stage.publisher()
    await first.start()
    viewer = await stage.viewer()
    try:
        await viewer.wait_for_frames(30)
        vanish(first.pc)  # off the network, no goodbye: noticed when pictures stop
        assert (await ws.next("stream.ended", within=15))["reason"] == "lost"
        again = stage.publisher()
        await again.start()
        await ws.next("stream.started")
        # The same WHEP viewer (the same peer) now shows the new connection's pictures
        # (numbered from 0).
        await eventually(
            lambda: any(n < 30 for n in viewer.numbers[-10:]), 15, "new publisher's frames"
        )
        assert viewer.pc.connectionState == "connected"
        await again.stop()
    finally:
        await viewer.hang_up(stage.client)
        await first.pc.close()
        await ws.close()


async def test_ending_the_room_hangs_up_its_video(stage: Stage) -> None:
    publisher = stage.publisher()
    await publisher.start()
    viewer = await stage.viewer()
    await viewer.wait_for_frames(5)
    ended = await stage.client.post(f"/api/rooms/{stage.room}/end", headers=stage.creator.headers)
    assert ended.status_code == 200
    await eventually(lambda: viewer.pc.connectionState == "closed", 10, "viewer hung up")
    await eventually(lambda: publisher.pc.connectionState == "closed", 10, "publisher hung up")
    with pytest.raises(WhipError) as err:
        await stage.publisher().start()
    assert err.value.status == 409 and "room_ended" in err.value.body
    await viewer.close()
    await publisher.pc.close()


async def test_shutdown_closes_every_peer(own_stage: Stage) -> None:
    node = own_stage.server
    publisher = own_stage.publisher()
    await publisher.start()
    viewer = await own_stage.viewer()
    await viewer.wait_for_frames(5)
    os.kill(node.process.pid, signal.SIGTERM)
    exit_code = await asyncio.to_thread(node.process.wait, 15)
    # uvicorn ends a graceful shutdown by re-raising the signal it caught.
    assert exit_code in (0, -signal.SIGTERM)
    assert "media stopped: 2 peer connections closed" in node.log.read_text()
    # The server said goodbye (DTLS close) rather than going silent.
    await eventually(lambda: viewer.pc.connectionState == "closed", 5, "viewer told")
    await eventually(lambda: publisher.pc.connectionState == "closed", 5, "publisher told")
    await viewer.close()
    await publisher.pc.close()


async def test_viewers_get_vp8_and_opus_whatever_order_they_offer(stage: Stage) -> None:
    publisher = stage.publisher()
    await publisher.start()
    # As Safari does: H.264 listed before VP8; and G.711 before Opus.
    viewer = await stage.viewer(prefer=("video/H264", "audio/PCMU"))
    try:
        await viewer.wait_for_frames(15)
        assert viewer.first_video_payload is not None
        assert is_vp8_keyframe_start(viewer.first_video_payload)
        await eventually(lambda: len(viewer.audio) >= 50, 10, "a second of sound")
        assert abs(pattern.dominant_hz(viewer.audio[-50:]) - pattern.TONE_HZ) < 10
    finally:
        await viewer.hang_up(stage.client)
        await publisher.stop()


async def test_a_crashed_nodes_stream_is_ended_by_the_others(
    media_server: Server, own_stage: Stage
) -> None:
    ws = await WsViewer.open(media_server.base_url, own_stage.room)  # on the surviving node
    await ws.hello(own_stage.guest())
    publisher = own_stage.publisher()
    await publisher.start()
    await ws.next("stream.started", within=15)
    own_stage.server.process.kill()  # no shutdown, no goodbye; its claim on the stream lapses
    own_stage.server.process.wait()
    ended = await ws.next("stream.ended", within=30)
    assert ended["reason"] == "lost"
    await publisher.pc.close()
    await ws.close()


async def test_the_first_video_tells_the_creators_followers_once(stage: Stage) -> None:
    """Going live by WHIP alone (no Go live call) tells followers, as the route does."""
    client, room = stage.client, stage.room
    _, account = await new_account(client)
    r = await client.put(f"/api/sellers/{stage.creator.seller.id}/follow", headers=account)
    assert r.status_code == 200, r.text
    publisher = stage.publisher()
    await publisher.start()
    try:
        found = await poll(
            lambda: notifications(client, account), lambda n: len(n["notifications"]) > 0, 20
        )
        assert [n["room_id"] for n in found["notifications"]] == [room]
    finally:
        await publisher.stop()
    # Going live by the route afterwards tells nobody again.
    assert (
        await client.post(f"/api/rooms/{room}/live", headers=stage.creator.headers)
    ).status_code == 200
    assert (await notifications(client, account))["unread"] == 1
