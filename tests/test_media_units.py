"""The media parts that need no network: the keyframe throttle, rendition sizes, offer checks,
the test pattern's frame numbers (through a real VP8 encoder and decoder), the stream's room
rules and the relay's per-viewer queue."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from kernel.errors import Conflict, Invalid
from live import rules
from live.media import pattern, sdp
from live.media.relay import Fanout, KeyframeGate, PacketTrack, VideoProfile, VideoRendition
from web.app import media_config
from web.settings import Settings


def profile(**changes: Any) -> VideoProfile:
    """The served rendition as the default settings make it, but for ``changes``."""
    return replace(media_config(Settings()).profile, **changes)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keyframe_requests_inside_the_gap_are_served_when_it_ends() -> None:
    clock = Clock()
    gate = KeyframeGate(0.5, clock)
    assert gate.take()  # the first picture
    assert not gate.take()
    gate.request()
    gate.request()
    clock.now += 0.2
    assert not gate.take()  # too soon: deferred, not dropped
    clock.now += 0.3
    assert gate.take()
    assert not gate.take()  # two requests, one keyframe


def test_a_periodic_keyframe_serves_waiting_requests() -> None:
    clock = Clock()
    gate = KeyframeGate(0.5, clock)
    gate.take()
    gate.request()
    clock.now += 1
    gate.saw_keyframe()
    assert not gate.take()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((1280, 720), (640, 360)),
        ((640, 480), (480, 360)),
        ((720, 1280), (360, 640)),
        ((320, 240), (320, 240)),  # never scaled up
        ((641, 361), (638, 360)),  # even sizes
    ],
)
def test_the_rendition_fits_its_short_side(
    source: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert profile(short_side=360).size_for(*source) == expected


OFFER_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def media(kind: str, direction: str, *codecs: str, port: int = 9) -> str:
    lines = [
        f"m={kind} {port} UDP/TLS/RTP/SAVPF {' '.join(str(96 + i) for i in range(len(codecs)))}"
    ]
    lines.append(f"a={direction}")
    lines += [f"a=rtpmap:{96 + i} {c}/90000" for i, c in enumerate(codecs)]
    return "\r\n".join(lines) + "\r\n"


def test_offers_are_checked_with_a_reason() -> None:
    sdp.check_publish_offer(OFFER_HEAD + media("video", "sendonly", "VP8", "H264"))
    sdp.check_watch_offer(OFFER_HEAD + media("video", "recvonly", "VP8"))
    cases: list[tuple[Any, str, str]] = [
        (sdp.check_publish_offer, "hello", "invalid_sdp"),
        (sdp.check_publish_offer, OFFER_HEAD + "m=video\r\n", "invalid_sdp"),
        (sdp.check_publish_offer, OFFER_HEAD + media("audio", "sendonly", "opus"), "no_video"),
        (sdp.check_publish_offer, OFFER_HEAD + media("video", "recvonly", "VP8"), "no_video"),
        (
            sdp.check_publish_offer,
            OFFER_HEAD + media("video", "sendonly", "AV1"),
            "unsupported_codec",
        ),
        (
            sdp.check_publish_offer,
            OFFER_HEAD + media("video", "sendonly", "VP8", port=0),
            "no_video",
        ),
        (sdp.check_watch_offer, OFFER_HEAD + media("video", "sendonly", "VP8"), "no_video"),
        (
            sdp.check_watch_offer,
            OFFER_HEAD + media("video", "recvonly", "H264"),
            "unsupported_codec",
        ),
        (sdp.check_watch_offer, "v=0\r\n" + "a=x\r\n" * 8000, "sdp_too_large"),
    ]
    for check, offer, code in cases:
        with pytest.raises(Invalid) as err:
            check(offer)
        assert err.value.code == code, offer[:80]


def test_frame_numbers_survive_vp8_and_scaling() -> None:
    rendition = VideoRendition(profile(short_side=240, bitrate=300_000))
    decoder = av.CodecContext.create("libvpx", "r")
    read: list[int | None] = []
    for n in range(500, 530):
        for packet in rendition.encode(pattern.video_frame(n, 640, 360, detail=True)):
            for frame in decoder.decode(packet):
                assert (frame.width, frame.height) == (426, 240)
                read.append(pattern.read_counter(frame))
    assert read == list(range(500, 530))
    assert rendition.keyframes == 1  # the first picture only: none asked for since


def test_a_picture_that_is_not_ours_reads_as_none() -> None:
    blank = av.VideoFrame(640, 360, "yuv420p")
    for plane in blank.planes:
        plane.update(bytes(plane.buffer_size))
    assert pattern.read_counter(blank) is None


def test_the_tone_is_found() -> None:
    frames = [pattern.tone_frame(i) for i in range(50)]
    assert abs(pattern.dominant_hz(frames) - pattern.TONE_HZ) < 2


def test_the_stream_starts_the_room_and_ends_with_it() -> None:
    room = rules.new_room(7, 1, 1, "Show", 1000)
    started = rules.start_stream(room, 2000)
    assert [e["type"] for e in started.events] == ["room.live", "stream.started"]
    assert started.room["stream"] == {"started_ms": 2000}
    again = rules.start_stream(started.room, 3000)
    assert [e["type"] for e in again.events] == ["stream.started"]
    stopped = rules.stop_stream(again.room, "lost", 4000)
    assert stopped.events == [{"type": "stream.ended", "reason": "lost", "ms": 4000}]
    assert stopped.room["status"] == "live"  # the sale goes on without video
    assert rules.stop_stream(stopped.room, "lost", 5000).events == []
    ended = rules.end(rules.start_stream(stopped.room, 6000).room, 7000)
    assert [e["type"] for e in ended.events] == ["stream.ended", "room.ended"]
    with pytest.raises(Conflict):
        rules.start_stream(ended.room, 8000)


def packet(key: bool) -> av.Packet:
    made = av.Packet(b"\x00" * 10)
    made.is_keyframe = key
    return made


async def test_a_track_joins_on_first_read_waits_for_a_keyframe_and_resyncs_when_behind() -> None:
    fanout = Fanout()
    asked: list[int] = []
    track = PacketTrack("video", fanout, lambda: asked.append(1))
    fanout.send([packet(True)])
    assert not fanout.tracks  # not reading yet: nothing queues up
    reading = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    assert fanout.tracks == {track} and asked == [1]
    fanout.send([packet(False)])  # a delta before any keyframe: useless to this viewer
    fanout.send([packet(True)])
    assert (await reading).is_keyframe
    for _ in range(40):  # the sender stalls: the queue overflows
        fanout.send([packet(False)])
    assert asked == [1, 1] and track.needs_keyframe
    fanout.send([packet(False), packet(True), packet(False)])
    assert (await track.recv()).is_keyframe
    assert not (await track.recv()).is_keyframe
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()
