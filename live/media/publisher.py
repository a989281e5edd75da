"""A WHIP publisher with a synthetic camera and microphone (``livecart publish``): goes live in a
room with a moving test pattern and a tone, for demos, tests and load tests."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

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
    """The WHIP or WHEP endpoint said no: its ``status`` and raw ``body``, and livecart's error
    ``code`` and ``message`` read from that body; ``str()`` is one sentence for a person."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        self.code, self.message = _error_of(body)
        detail = f"{self.code}, HTTP {status}" if self.code else f"HTTP {status}"
        super().__init__(f"{self.message or _phrase(status)} ({detail})")


class Unreachable(Exception):
    """No HTTP answer at all: nothing listens there, the name does not resolve, or it timed out."""

    def __init__(self, url: str, reason: object) -> None:
        # An OSError's strerror ("Connection refused") reads better than its "[Errno 111] ...".
        self.reason = getattr(reason, "strerror", None) or str(reason)
        self.url = url
        super().__init__(f"no answer from {url} ({self.reason})")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "The server refused without saying why."


def _error_of(body: str) -> tuple[str, str]:
    """livecart's ``{"error": {"code", "message"}}``; a proxy's page is cut to its first line."""
    try:
        error = json.loads(body)["error"]
        return str(error["code"]), " ".join(str(error["message"]).split())
    except (ValueError, TypeError, KeyError):
        first_line = body.strip().split("\n", 1)[0]
        return "", " ".join(first_line.split())[:200]


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
    except urllib.error.URLError as err:
        raise Unreachable(url, err.reason) from None
    except OSError as err:  # a timeout or reset after connecting is not wrapped in URLError
        raise Unreachable(url, err) from None


async def offer_answer(endpoint: str, token: str, pc: RTCPeerConnection) -> str:
    """Send our offer to a WHIP or WHEP endpoint, apply its answer; returns the URL of the
    server's peer for us (RFC 9725's "session URL"), which a DELETE hangs up."""
    await pc.setLocalDescription(await pc.createOffer())
    answer, location = await asyncio.to_thread(
        _request, "POST", endpoint, token, pc.localDescription.sdp.encode()
    )
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return urllib.parse.urljoin(endpoint, location)


async def hang_up(peer_url: str, token: str) -> None:
    await asyncio.to_thread(_request, "DELETE", peer_url, token)


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
    peer_url: str = ""

    async def start(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.camera = TestPatternCamera(self.width, self.height, self.fps, self.detail)
        self.pc.addTrack(self.camera)
        self.pc.addTrack(ToneMicrophone())
        endpoint = f"{self.base_url.rstrip('/')}/whip/{self.room_id}"
        try:
            self.peer_url = await offer_answer(endpoint, self.token, self.pc)
        except BaseException:
            await self.pc.close()
            raise

    async def stop(self) -> None:
        try:
            if self.peer_url:
                await hang_up(self.peer_url, self.token)
        finally:
            await self.pc.close()


async def publish_for(
    publisher: Publisher, seconds: float | None, on_live: Callable[[], None] | None = None
) -> None:
    """Go live, call ``on_live`` once the server has taken the offer, stay until ``seconds``
    pass (or forever, or the server hangs up), then hang up."""
    await publisher.start()
    if on_live is not None:
        on_live()
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
