"""A WHIP publisher with a synthetic camera and microphone (``livecart publish``): goes live in a
room with a moving test pattern and a tone, for demos, tests and load tests."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av.frame import Frame

from live.media import pattern


class PacedTrack(MediaStreamTrack):
    """Frames made on demand, released on a wall-clock schedule like a real device's."""

    def __init__(self, kind: str, period_s: float) -> None:
        super().__init__()
        self.kind = kind
        self.period_s = period_s
        self.sent = 0
        self._start: float | None = None

    def make(self, index: int) -> Frame:
        raise NotImplementedError

    async def recv(self) -> Frame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent * self.period_s
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = self.make(self.sent)
        self.sent += 1
        return frame


class TestPatternCamera(PacedTrack):
    def __init__(self, width: int = 640, height: int = 360, fps: int = 30, detail: bool = True):
        super().__init__("video", 1 / fps)
        self.width, self.height, self.fps, self.detail = width, height, fps, detail

    def make(self, index: int) -> Frame:
        frame = pattern.video_frame(index, self.width, self.height, detail=self.detail)
        frame.pts = index * (pattern.VIDEO_CLOCK // self.fps)
        return frame


class ToneMicrophone(PacedTrack):
    def __init__(self) -> None:
        super().__init__("audio", pattern.AUDIO_SAMPLES / pattern.AUDIO_RATE)

    def make(self, index: int) -> Frame:
        return pattern.tone_frame(index)


class WhipError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def _request(method: str, url: str, token: str, body: bytes | None = None) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/sdp"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode(), response.headers.get("Location", "")
    except urllib.error.HTTPError as err:
        raise WhipError(err.code, err.read().decode(errors="replace")) from None


async def offer_answer(endpoint: str, token: str, pc: RTCPeerConnection) -> str:
    """Send our offer to a WHIP or WHEP endpoint, apply its answer; returns the session URL."""
    await pc.setLocalDescription(await pc.createOffer())
    answer, location = await asyncio.to_thread(
        _request, "POST", endpoint, token, pc.localDescription.sdp.encode()
    )
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return urllib.parse.urljoin(endpoint, location)


async def hang_up(session_url: str, token: str) -> None:
    await asyncio.to_thread(_request, "DELETE", session_url, token)


@dataclass
class Publisher:
    """One synthetic creator: ``start`` goes live, ``stop`` hangs up (DELETE)."""

    base_url: str
    room_id: int
    token: str
    width: int = 640
    height: int = 360
    fps: int = 30
    detail: bool = True
    pc: RTCPeerConnection = field(init=False)
    camera: TestPatternCamera = field(init=False)
    session_url: str = ""

    async def start(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.camera = TestPatternCamera(self.width, self.height, self.fps, self.detail)
        self.pc.addTrack(self.camera)
        self.pc.addTrack(ToneMicrophone())
        endpoint = f"{self.base_url.rstrip('/')}/whip/{self.room_id}"
        try:
            self.session_url = await offer_answer(endpoint, self.token, self.pc)
        except BaseException:
            await self.pc.close()
            raise

    async def stop(self) -> None:
        try:
            if self.session_url:
                await hang_up(self.session_url, self.token)
        finally:
            await self.pc.close()


async def publish_for(publisher: Publisher, seconds: float | None) -> None:
    """Go live, stay until ``seconds`` pass (or forever, or the server hangs up), then hang up."""
    await publisher.start()
    gone = asyncio.Event()

    @publisher.pc.on("connectionstatechange")
    def on_state() -> None:
        if publisher.pc.connectionState in ("failed", "closed"):
            gone.set()

    try:
        await asyncio.wait_for(gone.wait(), seconds)
    except TimeoutError:
        pass
    finally:
        await publisher.stop()
