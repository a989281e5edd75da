"""What we accept as a WHIP or WHEP offer, checked before a peer connection is spent on it.

aiortc's own parser is lenient about some mistakes and raises bare exceptions on others; these
checks turn the common ones into a reason a person can act on (``Invalid`` with a code).
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.errors import Invalid
from live.error_codes import LiveErrorCode

MAX_SDP_BYTES = 32 * 1024


@dataclass(frozen=True)
class MediaSection:
    kind: str  # "video", "audio", or anything else an offer carries
    direction: str  # sendrecv, sendonly, recvonly, inactive
    codecs: frozenset[str]  # upper-case encoding names from a=rtpmap, e.g. "VP8", "OPUS"
    port_zero: bool  # a rejected or bundled-away section


def sections(sdp: str) -> list[MediaSection]:
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise Invalid(
            f"The offer is over {MAX_SDP_BYTES} bytes.",
            code=LiveErrorCode.SDP_TOO_LARGE,
            max=MAX_SDP_BYTES,
        )
    lines = [line.strip() for line in sdp.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise Invalid(
            "That is not an SDP offer: it must start with 'v=0'.", code=LiveErrorCode.INVALID_SDP
        )
    found: list[MediaSection] = []
    kind, direction, codecs, port_zero = "", "sendrecv", set[str](), False
    for line in [*lines[1:], "m=end 0 x"]:
        if line.startswith("m="):
            if kind:
                found.append(MediaSection(kind, direction, frozenset(codecs), port_zero))
            fields = line[2:].split()
            if len(fields) < 3:
                raise Invalid("A media line ('m=') is incomplete.", code=LiveErrorCode.INVALID_SDP)
            kind, direction, codecs = fields[0], "sendrecv", set()
            port_zero = fields[1] == "0"
        elif kind and line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            direction = line[2:]
        elif kind and line.startswith("a=rtpmap:"):
            _, _, spec = line.partition(" ")
            codecs.add(spec.split("/")[0].upper())
    if found and found[-1].kind == "end":
        found.pop()
    return found


def check_publish_offer(sdp: str) -> None:
    """A WHIP offer sends at least a video we can decode; audio is optional."""
    video = [s for s in sections(sdp) if s.kind == "video" and not s.port_zero]
    if not video:
        raise Invalid("The offer has no video to publish.", code=LiveErrorCode.NO_VIDEO)
    if not any(s.direction in ("sendonly", "sendrecv") for s in video):
        raise Invalid("The offer's video does not send anything.", code=LiveErrorCode.NO_VIDEO)
    if not any(s.codecs & {"VP8", "H264"} for s in video):
        raise Invalid(
            "Publish VP8 or H.264 video.",
            code=LiveErrorCode.UNSUPPORTED_CODEC,
            accepted=["VP8", "H264"],
        )


def check_watch_offer(sdp: str, video_codec: str = "VP8") -> None:
    """A WHEP offer receives video in the codec our renditions are encoded in."""
    found = [s for s in sections(sdp) if not s.port_zero]
    video = [s for s in found if s.kind == "video"]
    audio = [s for s in found if s.kind == "audio"]
    if not any(s.direction in ("recvonly", "sendrecv") for s in video):
        raise Invalid("The offer does not receive video.", code=LiveErrorCode.NO_VIDEO)
    if not any(video_codec in s.codecs for s in video):
        raise Invalid(
            f"This server streams {video_codec} video; the offer does not accept it.",
            code=LiveErrorCode.UNSUPPORTED_CODEC,
            accepted=[video_codec],
        )
    if audio and not any("OPUS" in s.codecs for s in audio):
        raise Invalid(
            "This server streams Opus audio; the offer does not accept it.",
            code=LiveErrorCode.UNSUPPORTED_CODEC,
            accepted=["opus"],
        )
