"""The HTTP details of WHIP and WHEP that encoders and browser players rely on (RFC 9725): the
STUN/TURN servers in ``Link`` headers, a peer's ``ETag``, ``405`` with ``Allow`` for every
method a URL does not take, and ``OPTIONS`` with CORS for pages on allowed origins. Real aiortc
peers against a running ``livecart serve``.

The server gathers its own candidates with the ICE servers it advertises, so they must answer:
a STUN server that nobody answers costs every offer aioice's 5 s gathering timeout. The test
runs a small real STUN server on the loopback (Binding answered, TURN Allocate refused), so the
advertised servers are real and nothing leaves the machine."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from kernel.db import Database
from live.media import publisher as synthetic
from tests.conftest import SellerAccount, start_server
from tests.harness import Server, stop_server
from tests.helpers import http_room, make_seller
from tests.mediaclient import eventually, peerless_client
from web.api_media import ice_links
from web.auth import GuestSessions
from web.settings import Settings

pytestmark = pytest.mark.storage

ALLOWED_ORIGIN = "https://shop.example"
OTHER_ORIGIN = "https://elsewhere.example"
# A quote and a backslash: both must arrive escaped in the quoted-strings of the Link header.
TURN_USERNAME = 'live"cart'
TURN_CREDENTIAL = "s3cret\\key"
ETAG = re.compile(r'^"[0-9a-f]{32}"$')


class StunServer:
    """A real STUN server on 127.0.0.1 (RFC 8489 Binding), which refuses TURN allocations with
    403: enough for the server's ICE gathering to finish at once with our advertised servers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)  # how soon ``close`` is noticed
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
                request = stun.parse_message(data)
            except (TimeoutError, ValueError):
                continue
            self.sock.sendto(bytes(self._reply(request, addr)), addr)

    @staticmethod
    def _reply(request: stun.Message, addr: tuple[str, int]) -> stun.Message:
        if request.message_method == stun.Method.BINDING:
            reply = stun.Message(
                request.message_method, stun.Class.RESPONSE, request.transaction_id
            )
            reply.attributes["XOR-MAPPED-ADDRESS"] = addr
        else:
            reply = stun.Message(request.message_method, stun.Class.ERROR, request.transaction_id)
            reply.attributes["ERROR-CODE"] = (403, "Forbidden")
        return reply

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def stun_server() -> Iterator[StunServer]:
    running = StunServer()
    yield running
    running.close()


def ice_urls(stun_server: StunServer) -> tuple[str, str]:
    return (
        f"stun:127.0.0.1:{stun_server.port}",
        f"turn:127.0.0.1:{stun_server.port}?transport=udp",
    )


@pytest.fixture(scope="module")
def whip_server(
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    stun_server: StunServer,
) -> Iterator[Server]:
    running = start_server(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("whip") / "server.log",
        LIVECART_WEBRTC_ADDRESSES="127.0.0.1",
        LIVECART_ICE_SERVERS=",".join(ice_urls(stun_server)),
        LIVECART_TURN_USERNAME=TURN_USERNAME,
        LIVECART_TURN_CREDENTIAL=TURN_CREDENTIAL,
        LIVECART_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
        LIVECART_WEBRTC_CONNECT_TIMEOUT_S="5",
        LIVECART_VIDEO_PUBLISHER_GRACE_S="2",
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
async def creator(db: Database) -> SellerAccount:
    return await make_seller(db, "WHIP Creator")


@pytest.fixture
async def client(whip_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with peerless_client(whip_server.base_url) as http:
        yield http


@pytest.fixture
async def room(client: httpx.AsyncClient, creator: SellerAccount) -> int:
    room_id, _product, _sku = await http_room(client, creator, live=False)
    return room_id


def expected_links(stun_server: StunServer) -> list[str]:
    stun_url, turn_url = ice_urls(stun_server)
    return [
        f'<{stun_url}>; rel="ice-server"',
        f'<{turn_url}>; rel="ice-server"; username="live\\"cart"; '
        'credential="s3cret\\\\key"; credential-type="password"',
    ]


class Peer:
    """One of our aiortc peers and the server's answer to its offer."""

    def __init__(self, pc: RTCPeerConnection, answer: httpx.Response) -> None:
        self.pc = pc
        self.answer = answer

    @property
    def url(self) -> str:
        """The server's peer for this one: RFC 9725's session URL."""
        return self.answer.headers["location"]

    async def connected(self) -> None:
        await eventually(lambda: self.pc.connectionState == "connected", 15, "connected")

    async def close(self) -> None:
        await self.pc.close()


async def offer(
    http: httpx.AsyncClient, path: str, token: str, pc: RTCPeerConnection, **headers: str
) -> Peer:
    await pc.setLocalDescription(await pc.createOffer())
    answer = await http.post(
        path,
        content=pc.localDescription.sdp,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp", **headers},
    )
    if answer.status_code == 201:
        await pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
    return Peer(pc, answer)


async def publish(
    http: httpx.AsyncClient, room_id: int, creator: SellerAccount, **headers: str
) -> Peer:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    # Plain pattern, small: cheap to encode on a shared test machine.
    pc.addTrack(synthetic.TestPatternCamera(320, 180, fps=15, detail=False))
    pc.addTrack(synthetic.ToneMicrophone())
    return await offer(http, f"/whip/{room_id}", creator.token, pc, **headers)


async def watch(http: httpx.AsyncClient, room_id: int, token: str) -> Peer:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    return await offer(http, f"/whep/{room_id}", token, pc)


async def hang_up(http: httpx.AsyncClient, peer: Peer, token: str, **headers: str) -> int:
    response = await http.delete(peer.url, headers={"Authorization": f"Bearer {token}", **headers})
    await peer.close()
    return response.status_code


async def test_answers_carry_the_ice_servers_and_a_peer_etag(
    client: httpx.AsyncClient,
    creator: SellerAccount,
    room: int,
    sessions: GuestSessions,
    stun_server: StunServer,
) -> None:
    publisher = await publish(client, room, creator)
    guest = sessions.issue()[1]
    viewer = await watch(client, room, guest)
    try:
        for peer in (publisher, viewer):
            assert peer.answer.status_code == 201, peer.answer.text
            assert peer.answer.headers.get_list("link") == expected_links(stun_server)
            assert ETAG.match(peer.answer.headers["etag"])
            # No Origin, no CORS: OBS and GStreamer need none.
            assert "access-control-allow-origin" not in peer.answer.headers
            await peer.connected()
        assert publisher.answer.headers["etag"] != viewer.answer.headers["etag"]
    finally:
        assert await hang_up(client, viewer, guest) == 200
        assert await hang_up(client, publisher, creator.token) == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "POST"])
async def test_a_peer_url_takes_only_delete_and_options(
    client: httpx.AsyncClient, creator: SellerAccount, room: int, method: str
) -> None:
    publisher = await publish(client, room, creator)
    try:
        await publisher.connected()
        response = await client.request(
            method, publisher.url, headers={"Authorization": f"Bearer {creator.token}"}
        )
        assert response.status_code == 405
        assert response.headers["allow"] == "DELETE, OPTIONS"
        if method != "HEAD":
            assert response.json()["error"]["code"] == "method_not_allowed"
        assert publisher.pc.connectionState == "connected"
    finally:
        assert await hang_up(client, publisher, creator.token) == 200


async def test_patch_is_refused_with_405_and_the_peer_stays(
    client: httpx.AsyncClient, creator: SellerAccount, room: int, sessions: GuestSessions
) -> None:
    """Trickle ICE and ICE restarts are PATCHes (RFC 9725 section 4.3): not taken, and the
    reason says the candidates belong in the offer."""
    publisher = await publish(client, room, creator)
    guest = sessions.issue()[1]
    viewer = await watch(client, room, guest)
    try:
        for peer, token in ((publisher, creator.token), (viewer, guest)):
            await peer.connected()
            response = await client.patch(
                peer.url,
                content="a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/trickle-ice-sdpfrag",
                    "If-Match": peer.answer.headers["etag"],
                },
            )
            assert response.status_code == 405
            assert response.headers["allow"] == "DELETE, OPTIONS"
            error = response.json()["error"]
            assert error["code"] == "method_not_allowed"
            assert "every candidate in the offer" in error["message"]
        assert publisher.pc.connectionState == viewer.pc.connectionState == "connected"
    finally:
        assert await hang_up(client, viewer, guest) == 200
        assert await hang_up(client, publisher, creator.token) == 200


@pytest.mark.parametrize("kind", ["whip", "whep"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE"])
async def test_an_endpoint_takes_only_post_and_options(
    client: httpx.AsyncClient, room: int, kind: str, method: str
) -> None:
    response = await client.request(method, f"/{kind}/{room}")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    if method != "HEAD":
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_turn_links_carry_credentials_only_when_both_are_set() -> None:
    urls = ["stun:s.example:3478", "turns:t.example:5349?transport=tcp"]
    assert ice_links(urls, "user", None) == [
        '<stun:s.example:3478>; rel="ice-server"',
        '<turns:t.example:5349?transport=tcp>; rel="ice-server"',
    ]
    assert ice_links(urls[1:], "user", "pass") == [
        '<turns:t.example:5349?transport=tcp>; rel="ice-server"; username="user"; '
        'credential="pass"; credential-type="password"'
    ]


@pytest.mark.parametrize("name", ["LIVECART_TURN_CREDENTIAL", "LIVECART_ICE_SERVERS"])
@pytest.mark.parametrize("value", ["pass\nword", "p\u00e4ss"], ids=["newline", "non-ascii"])
def test_settings_refuse_what_a_link_header_cannot_carry(name: str, value: str) -> None:
    with pytest.raises(SystemExit, match=name):
        Settings.from_env({name: value})


def preflight_headers(origin: str | None, method: str) -> dict[str, str]:
    headers = {
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return {**headers, "Origin": origin} if origin else headers


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_preflight_from_an_allowed_origin_is_granted(
    client: httpx.AsyncClient, room: int, kind: str, stun_server: StunServer
) -> None:
    endpoint = await client.options(
        f"/{kind}/{room}", headers=preflight_headers(ALLOWED_ORIGIN, "POST")
    )
    assert endpoint.status_code == 204
    assert endpoint.headers["allow"] == "POST, OPTIONS"
    assert endpoint.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert endpoint.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert endpoint.headers["access-control-allow-headers"] == (
        "Authorization, Content-Type, If-Match"
    )
    assert endpoint.headers["access-control-max-age"] == "600"
    assert "Origin" in endpoint.headers["vary"]
    assert endpoint.headers["accept-post"] == "application/sdp"
    assert endpoint.headers.get_list("link") == expected_links(stun_server)

    peer = await client.options(
        f"/{kind}/{room}/any-peer", headers=preflight_headers(ALLOWED_ORIGIN, "DELETE")
    )
    assert peer.status_code == 204
    assert peer.headers["allow"] == "DELETE, OPTIONS"
    assert peer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "DELETE" in peer.headers["access-control-allow-methods"].split(", ")
    assert "link" not in peer.headers


@pytest.mark.parametrize("origin", [OTHER_ORIGIN, None, "same"], ids=["other", "none", "same"])
async def test_preflight_from_elsewhere_gets_no_grant(
    client: httpx.AsyncClient, whip_server: Server, room: int, origin: str | None
) -> None:
    """Still 204 with Allow and the ICE servers, but nothing a browser takes as permission
    (a same-origin page needs none)."""
    sent = whip_server.base_url if origin == "same" else origin
    response = await client.options(f"/whip/{room}", headers=preflight_headers(sent, "POST"))
    assert response.status_code == 204
    assert response.headers["allow"] == "POST, OPTIONS"
    assert len(response.headers.get_list("link")) == 2
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_answers_to_an_allowed_origin_can_be_read_by_its_page(
    client: httpx.AsyncClient, creator: SellerAccount, room: int
) -> None:
    origin = {"Origin": ALLOWED_ORIGIN}
    publisher = await publish(client, room, creator, **origin)
    try:
        answer = publisher.answer
        assert answer.status_code == 201, answer.text
        assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        exposed = answer.headers["access-control-expose-headers"].split(", ")
        assert {"Location", "Link", "ETag"} <= set(exposed)
        await publisher.connected()
        # A refusal too, so the page can say why.
        second = await publish(client, room, creator, **origin)
        await second.close()
        assert second.answer.status_code == 409
        assert second.answer.json()["error"]["code"] == "already_publishing"
        assert second.answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        # Another site's page gets the same answer, but its browser may not read it.
        third = await publish(client, room, creator, Origin=OTHER_ORIGIN)
        await third.close()
        assert third.answer.status_code == 409
        assert "access-control-allow-origin" not in third.answer.headers
    finally:
        response = await client.delete(
            publisher.url, headers={"Authorization": f"Bearer {creator.token}", **origin}
        )
        await publisher.close()
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
