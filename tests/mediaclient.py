"""Real aiortc peers for the media tests: a WHEP viewer that decodes what it gets and reads the
test pattern's frame numbers back, and notes the first video RTP packet it was sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame

from live.media import pattern
from live.media.ice import use_host_addresses
from live.media.publisher import offer_answer

# Our peers, like the server under test, talk over the loopback only.
use_host_addresses(["127.0.0.1"])


def is_vp8_keyframe_start(payload: bytes) -> bool:
    descriptor, rest = VpxPayloadDescriptor.parse(payload)
    # RFC 7741: the first partition's first packet, whose VP8 header has the P bit clear.
    return bool(descriptor.partition_start) and descriptor.partition_id == 0 and not rest[0] & 1


class WhepViewer:
    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.counters: list[int | None] = []
        self.audio: list[AudioFrame] = []
        self.first_video_payload: bytes | None = None
        self.peer_url = ""
        self.token = ""
        self._readers: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, base_url: str, room_id: int, token: str, *, prefer: tuple[str, ...] = ()
    ) -> WhepViewer:
        """``prefer``: codecs to list first in the offer (e.g. "video/H264", "audio/PCMU")."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer = cls(pc)
        video = pc.addTransceiver("video", direction="recvonly")
        audio = pc.addTransceiver("audio", direction="recvonly")
        for transceiver in (video, audio):
            codecs = RTCRtpReceiver.getCapabilities(transceiver.kind).codecs
            first = [c for c in codecs if c.mimeType in prefer]
            transceiver.setCodecPreferences(first + [c for c in codecs if c not in first])
        viewer._spy_on(video.receiver)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            viewer._readers.add(asyncio.create_task(viewer._read(track)))

        viewer.token = token
        try:
            viewer.peer_url = await offer_answer(f"{base_url}/whep/{room_id}", token, pc)
        except BaseException:
            await pc.close()
            raise
        return viewer

    def _spy_on(self, receiver: Any) -> None:
        # Test instrument on our own client: see the bytes the server sent before decoding.
        handle = receiver._handle_rtp_packet

        async def spy(packet: RtpPacket, arrival_time_ms: int) -> None:
            if self.first_video_payload is None and packet.payload:
                self.first_video_payload = packet.payload
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = spy

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.counters.append(pattern.read_counter(frame))
                elif isinstance(frame, AudioFrame):
                    self.audio.append(frame)

    @property
    def numbers(self) -> list[int]:
        return [c for c in self.counters if c is not None]

    async def wait_for_frames(self, n: int, within: float = 20) -> list[int]:
        start = len(self.numbers)
        await eventually(lambda: len(self.numbers) >= start + n, within, f"{n} frames")
        return self.numbers[start:]

    async def hang_up(self, http: httpx.AsyncClient) -> int:
        response = await http.delete(
            self.peer_url, headers={"Authorization": f"Bearer {self.token}"}
        )
        await self.close()
        return response.status_code

    async def close(self) -> None:
        await self.pc.close()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def eventually(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def node_figures(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name.startswith("livecart_") and value
    }


async def wait_for_figures(http: httpx.AsyncClient, within: float = 15, **wanted: float) -> None:
    """Poll /metrics until each ``livecart_<name>`` figure is at most the wanted value."""
    figures: dict[str, float] = {}
    deadline = asyncio.get_running_loop().time() + within
    while True:
        figures = await node_figures(http)
        if all(figures.get(f"livecart_{k}", 0) <= v for k, v in wanted.items()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"figures not down to {wanted}: {figures}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def peerless_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to a media node that, when the test is done with it, waits until the node
    has no peers left: what a test opened, it closed."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield http
        await wait_for_figures(http, webrtc_peers=0, video_viewers=0, video_publishers=0)


def vanish(pc: RTCPeerConnection) -> None:
    """The peer drops off the network: its sockets close without a DTLS goodbye, as when a
    phone loses its signal. (Test instrument on our own client, through aioice's internals.)"""
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        for protocol in ice._connection._protocols:
            if protocol.transport is not None:
                protocol.transport.close()
