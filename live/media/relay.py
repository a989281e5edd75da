"""Encode once, send to everyone: the creator's decoded pictures and sound are encoded once per
rendition, and the same ``av.Packet`` objects go to every viewer's sender, which only packs them
into RTP (aiortc's ``RTCRtpSender`` does that for packets instead of encoding frames).

One reader per source (like aiortc's ``MediaRelay``), but the reader owns the encoder, so the cost
of a viewer is packing and encrypting, not encoding. See docs/decisions/0010-encode-once.md.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame
from av.frame import Frame
from av.packet import Packet
from av.video.frame import PictureType, VideoFrame

log = logging.getLogger(__name__)

VIDEO_CLOCK = fractions.Fraction(1, 90_000)
AUDIO_CLOCK = fractions.Fraction(1, 48_000)
# A viewer more than about a second behind (30 video frames, 50 audio packets) has its queue
# emptied; video then waits for the next keyframe, which it asks for.
MAX_QUEUED = {"video": 30, "audio": 50}


class KeyframeGate:
    """Keyframe requests from joining viewers and their PLI/FIR, throttled to one keyframe per
    ``interval_s``: a request inside the interval is served when it ends, never dropped."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._wanted = True  # the first picture is a keyframe anyway
        self._last = -float("inf")

    def request(self) -> None:
        self._wanted = True

    def take(self) -> bool:
        """Whether the picture about to be encoded should be a keyframe."""
        now = self._clock()
        if self._wanted and now - self._last >= self.interval_s:
            self._wanted = False
            self._last = now
            return True
        return False

    def saw_keyframe(self) -> None:
        # The encoder made one on its own (its periodic interval): that serves waiting viewers.
        self._wanted = False
        self._last = self._clock()


@dataclass(frozen=True)
class VideoProfile:
    """One rendition: its picture fits in a box ``short_side`` pixels on its shorter side (so
    360 gives 640x360 landscape, 360x640 portrait) and is encoded at ``bitrate``. The bitrate
    and keyframe timing are settings (web/settings.py); the one rendition served is 360p."""

    bitrate: int
    keyframe_interval_s: float
    min_keyframe_gap_s: float
    short_side: int = 360

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, self.short_side / min(width, height))
        # VP8 wants even sizes for 4:2:0 chroma.
        return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class PacketTrack(MediaStreamTrack):
    """One viewer's track: a short queue of shared packets. It joins its stream when the
    viewer's sender first asks for a packet (the peer is connected by then: nothing goes stale
    in the queue while ICE and DTLS finish). Video waits for a keyframe before it starts, and
    again after falling behind."""

    def __init__(self, kind: str, fanout: Fanout, on_keyframe_wanted: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._fanout: Fanout | None = fanout
        self._queue: collections.deque[Packet[Any]] = collections.deque()
        self._ready = asyncio.Event()
        self._max = MAX_QUEUED[kind]
        self._keyframe_wanted = on_keyframe_wanted
        self.needs_keyframe = kind == "video"
        self.sent = 0

    def offer(self, packet: Packet[Any]) -> None:
        if self.needs_keyframe:
            if not packet.is_keyframe:
                return
            self.needs_keyframe = False
        elif len(self._queue) >= self._max:
            self._queue.clear()
            if self.kind == "video" and not packet.is_keyframe:
                self.needs_keyframe = True
                self._keyframe_wanted()
                return
        self._queue.append(packet)
        self._ready.set()

    def want_keyframe(self) -> None:
        """The viewer's PLI/FIR: hand on to the encoder (throttled there)."""
        self._keyframe_wanted()

    async def recv(self) -> Packet[Any]:
        if self._fanout is not None:
            self._fanout.tracks.add(self)
            self._fanout = None
            self._keyframe_wanted()
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._fanout = None
        self._ready.set()  # wake recv so the sender's loop sees the end


class Fanout:
    """The viewers of one encoded stream."""

    def __init__(self) -> None:
        self.tracks: set[PacketTrack] = set()
        # Encoding runs in worker threads; a dropped creator's last encode can still be running
        # when their reconnection's first frame arrives. One encoder, one thread at a time.
        self.encoding = threading.Lock()

    def send(self, packets: list[Packet[Any]]) -> None:
        for packet in packets:
            for track in self.tracks:
                track.offer(packet)

    def stop(self) -> None:
        for track in list(self.tracks):
            track.stop()
        self.tracks.clear()


class VideoRendition(Fanout):
    """Decoded pictures in, one VP8 encoder, packets out to every viewer."""

    def __init__(self, profile: VideoProfile) -> None:
        super().__init__()
        self.profile = profile
        self.gate = KeyframeGate(profile.min_keyframe_gap_s)
        self._codec: av.VideoCodecContext | None = None
        self._last_keyframe = -float("inf")
        self._epoch = time.monotonic()
        self.frames = 0
        self.keyframes = 0

    def subscribe(self) -> PacketTrack:
        return PacketTrack("video", self, self.gate.request)

    def _encoder(self, width: int, height: int) -> av.VideoCodecContext:
        codec = self._codec
        if codec is not None and (codec.width, codec.height) == (width, height):
            return codec
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.time_base = VIDEO_CLOCK
        codec.bit_rate = self.profile.bitrate
        codec.gop_size = 100_000  # keyframes only when asked: by viewers or by the interval
        codec.thread_count = 1  # one encoder per stream on a shared core; threads only contend
        codec.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "error-resilient": "1",
            "static-thresh": "1",
            "undershoot-pct": "95",
            "overshoot-pct": "15",
            "maxrate": str(self.profile.bitrate),
            "minrate": str(self.profile.bitrate // 4),
            "bufsize": str(self.profile.bitrate),
        }
        self._codec = codec
        self.gate.request()  # a new encoder starts on a keyframe; let the gate know
        return codec

    def encode(self, frame: Frame) -> list[Packet[Any]]:
        """Runs in a worker thread: libvpx releases the GIL while it encodes."""
        assert isinstance(frame, VideoFrame)
        with self.encoding:
            return self._encode(frame)

    def _encode(self, frame: VideoFrame) -> list[Packet[Any]]:
        width, height = self.profile.size_for(frame.width, frame.height)
        if (frame.width, frame.height) != (width, height) or frame.format.name != "yuv420p":
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        # Our own clock, not the publisher's: its timestamps restart when it reconnects, and a
        # viewer's RTP timestamps must not jump back.
        now = time.monotonic()
        frame.pts, frame.time_base = int((now - self._epoch) * 90_000), VIDEO_CLOCK
        force = self.gate.take() or now - self._last_keyframe >= self.profile.keyframe_interval_s
        frame.pict_type = PictureType.I if force else PictureType.NONE
        packets = self._encoder(width, height).encode(frame)
        for packet in packets:
            packet.pts, packet.time_base = frame.pts, VIDEO_CLOCK
            if packet.is_keyframe:
                self._last_keyframe = now
                self.gate.saw_keyframe()
                self.keyframes += 1
        self.frames += 1
        return packets


class AudioRendition(Fanout):
    """Decoded sound in, one Opus encoder, packets out to every viewer."""

    def __init__(self) -> None:
        super().__init__()
        self._codec = av.CodecContext.create("libopus", "w")
        assert isinstance(self._codec, av.AudioCodecContext)
        self._codec.bit_rate = 64_000
        self._codec.sample_rate = 48_000
        self._codec.format = "s16"
        self._codec.layout = "stereo"
        self._codec.time_base = AUDIO_CLOCK
        self.restart()
        self._epoch = time.monotonic()
        self._next_pts = 0

    def restart(self) -> None:
        """A new publisher: its sound may come in another layout or rate."""
        self._resampler = av.AudioResampler(
            format="s16", layout="stereo", rate=48_000, frame_size=960
        )

    def subscribe(self) -> PacketTrack:
        return PacketTrack("audio", self, lambda: None)

    def encode(self, frame: Frame) -> list[Packet[Any]]:
        assert isinstance(frame, AudioFrame)
        with self.encoding:
            return self._encode(frame)

    def _encode(self, frame: AudioFrame) -> list[Packet[Any]]:
        packets: list[Packet[Any]] = []
        # Keep up with the wall clock across gaps (a creator reconnecting, lost packets), or
        # the sound would fall behind the pictures, which are stamped on arrival.
        self._next_pts = max(self._next_pts, int((time.monotonic() - self._epoch) * 48_000))
        for chunk in self._resampler.resample(frame):
            # Our own clock, one packet per 20 ms: the publisher's timestamps restart when it
            # reconnects, and viewers' RTP timestamps must not go backwards.
            chunk.pts, chunk.time_base = self._next_pts, AUDIO_CLOCK
            self._next_pts += chunk.samples
            packets += self._codec.encode(chunk)
        for packet in packets:
            packet.time_base = AUDIO_CLOCK
        return packets


async def pump(
    source: MediaStreamTrack,
    encode: Callable[[Frame], list[Packet[Any]]],
    fanout: Fanout,
    on_frame: Callable[[], None],
) -> None:
    """Read a publisher's track until it ends, encoding each frame once (in a worker thread, so
    the event loop keeps sending) and handing the packets to every viewer. Video that arrives
    faster than it can be encoded is skipped to the newest picture, so delay cannot build up."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            frame = await source.recv()
        except MediaStreamError:
            return
        if source.kind == "video":
            frame = _newest(source, frame)
        assert isinstance(frame, Frame)  # a remote track yields decoded frames
        on_frame()
        try:
            packets = await loop.run_in_executor(None, encode, frame)
        except Exception:  # one bad frame must not stop the stream for everyone
            log.exception("could not encode a %s frame", source.kind)
            continue
        fanout.send(packets)


def _newest(source: MediaStreamTrack, frame: Any) -> Any:
    # aiortc's remote track queues decoded frames without bound (its private ``_queue``; None
    # marks the end, which must stay for the next recv to see).
    queue = getattr(source, "_queue", None)
    if not isinstance(queue, asyncio.Queue):
        return frame
    while not queue.empty():
        later = queue.get_nowait()
        if later is None:
            queue.put_nowait(None)
            break
        frame = later
    return frame
