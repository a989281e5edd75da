"""A node's live video: one stage per room with a creator publishing (WHIP) and the viewers
watching it (WHEP), each a ``Peer``: our end of one real aiortc peer connection (its ``pc``).
Over HTTP a peer is what RFC 9725 calls a WHIP (or WHEP) session, and that word stays on the
wire: ``/whip/{room}/{session}``, the ``session_*`` error codes.

A stage outlives a publisher's dropped connection by ``publisher_grace_s``: its viewers stay
connected and the picture resumes when the creator comes back. Every peer ends by one path
(``_end``), whoever notices first: a DELETE, the other end going away, a connection that never
came up, the room ending, or shutdown.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamTrack

from kernel.errors import Conflict, Invalid, NotFound, Unavailable
from live.error_codes import LiveErrorCode
from live.media import dtls, sdp
from live.media.relay import AudioRendition, PacketTrack, VideoProfile, VideoRendition, pump
from live.store import RoomStore

dtls.widen_cipher_suites()  # decision 0016: RSA-certificate encoders too
log = logging.getLogger(__name__)

StreamStarted = Callable[[int], Awaitable[None]]
StreamEnded = Callable[[int, str], Awaitable[None]]
# (room id, the publisher's owner, code, reason for a person): its encoder could not connect.
PublisherFailed = Callable[[int, str, LiveErrorCode, str], Awaitable[None]]
# Ended peers remembered so a late DELETE hears `session_ended` rather than `session_not_found`.
ENDED_KEPT = 10_000
RoomOpen = Callable[[int], Awaitable[bool]]


class StreamLock:
    """Who may publish a room, across nodes: a claim in Redis that lapses unless renewed, so a
    node that dies frees its rooms within ``ttl_s``."""

    def __init__(self, store: RoomStore, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s

    async def claim(self, room_id: int, holder: str) -> bool:
        return await self.store.claim_stream(room_id, holder, int(self.ttl_s * 1000))

    async def renew(self, room_id: int, holder: str) -> bool:
        return await self.store.renew_stream(room_id, holder, int(self.ttl_s * 1000))

    async def release(self, room_id: int, holder: str) -> None:
        await self.store.release_stream(room_id, holder)


@dataclass(frozen=True)
class MediaConfig:
    """Video's knobs, each a setting (web/settings.py declares them and their defaults;
    web/app.py's ``media_config`` fills this in)."""

    max_viewers: int
    connect_timeout_s: float
    publisher_grace_s: float
    # A publisher that sends no picture for this long is gone (a phone that lost its network
    # stays "connected" until ICE consent fails, about 30 s later).
    stall_s: float
    retry_after_s: int
    profile: VideoProfile
    ice_servers: tuple[RTCIceServer, ...]


@dataclass(eq=False)
class Stage:
    room_id: int
    video: VideoRendition
    audio: AudioRendition
    publisher: Peer | None = None
    viewers: dict[str, Peer] = field(default_factory=dict)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    grace: asyncio.TimerHandle | None = None
    last_picture: float = 0.0  # monotonic time the publisher's last video frame arrived


@dataclass(eq=False)
class Peer:
    """A creator publishing a room or a viewer watching it, on this node; ``id`` is the last
    part of its URL."""

    id: str
    stage: Stage
    role: str  # "publisher" or "viewer"
    owner: str
    pc: RTCPeerConnection
    answer: str = ""
    tracks: list[PacketTrack] = field(default_factory=list)
    started: bool = False  # the room was told the stream started
    ended: bool = False
    deadline: asyncio.TimerHandle | None = None
    keeper: asyncio.Task[None] | None = None

    @property
    def room_id(self) -> int:
        return self.stage.room_id


class Broadcasts:
    def __init__(
        self,
        config: MediaConfig,
        lock: StreamLock,
        on_started: StreamStarted,
        on_ended: StreamEnded,
        room_open: RoomOpen,
        on_failed: PublisherFailed | None = None,
    ) -> None:
        self.config = config
        self._on_failed = on_failed
        self.ended: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = lock
        self._on_started = on_started
        self._on_ended = on_ended
        self._room_open = room_open
        self.stages: dict[int, Stage] = {}
        self.open: dict[str, Peer] = {}  # peers not yet ended; ``ended`` says why the rest did
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- figures for /metrics and tests ------------------------------------------------------

    @property
    def peers(self) -> int:
        return len(self.open)

    @property
    def viewers(self) -> int:
        return sum(len(s.viewers) for s in self.stages.values())

    @property
    def publishers(self) -> int:
        return sum(1 for s in self.stages.values() if s.publisher is not None)

    @property
    def keyframes(self) -> int:
        return sum(s.video.keyframes for s in self.stages.values())

    # -- WHIP --------------------------------------------------------------------------------

    async def publish(self, room_id: int, owner: str, offer: str) -> Peer:
        """Take a creator's offer and answer it. The room hears ``stream.started`` (and goes
        live) when the first picture arrives, not before: an answer is not yet a video."""
        self._refuse_if_closing()
        sdp.check_publish_offer(offer)
        stage = self._stage(room_id)
        if stage.publisher is not None:
            raise Conflict(
                "Someone is already publishing this room.", code=LiveErrorCode.ALREADY_PUBLISHING
            )
        peer = self._new_peer(stage, "publisher", owner)
        stage.publisher = peer  # before any await: a second request here now gets 409
        stage.last_picture = time.monotonic()
        stage.audio.restart()
        if stage.grace is not None:
            stage.grace.cancel()
            stage.grace = None
        try:
            if not await self._lock.claim(room_id, peer.id):
                raise Conflict(
                    "Someone is already publishing this room (on another node).",
                    code=LiveErrorCode.ALREADY_PUBLISHING,
                )
            self._still_open(peer)
            pumped: set[str] = set()

            @peer.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind in pumped:  # one camera, one microphone: extra tracks are ignored
                    return
                pumped.add(track.kind)
                stage.pumps.append(asyncio.create_task(self._pump(stage, peer, track)))

            await self._set_offer(peer, offer)
            for transceiver in peer.pc.getTransceivers():
                transceiver.direction = "recvonly"
            await self._answer(peer)
        except BaseException:
            await self._end(peer, "failed")
            raise
        peer.keeper = asyncio.create_task(self._keep_watch(peer))
        return peer

    async def _pump(self, stage: Stage, peer: Peer, track: MediaStreamTrack) -> None:
        if track.kind != "video":
            await pump(track, stage.audio.encode, stage.audio, lambda: None)
            return

        def on_picture() -> None:
            stage.last_picture = time.monotonic()
            if not peer.started:
                peer.started = True
                self._spawn(self._announce(peer))

        await pump(track, stage.video.encode, stage.video, on_picture)

    async def _announce(self, peer: Peer) -> None:
        try:
            await self._on_started(peer.room_id)
        except Exception as exc:  # the room ended meanwhile, or Redis is away: no show
            log.warning("room %s refused its stream: %r", peer.room_id, exc)
            await self._end(peer, "failed")

    async def _keep_watch(self, peer: Peer) -> None:
        """While a creator publishes: renew the claim, notice a stalled picture, and stop if
        the room was ended (perhaps through another node)."""
        period = min(self._lock.ttl_s / 3, self.config.stall_s / 2)
        while not peer.ended:
            await asyncio.sleep(period)
            if peer.ended:
                return
            if time.monotonic() - peer.stage.last_picture > self.config.stall_s:
                await self._end(peer, "lost")
                return
            try:
                still_ours = await self._lock.renew(peer.room_id, peer.id)
                room_open = await self._room_open(peer.room_id)
            except Exception:  # Redis away for a moment: the claim lasts a few periods
                log.warning("could not renew the stream claim of room %s", peer.room_id)
                continue
            if not room_open:
                await self.end_room(peer.room_id)
            elif not still_ours:
                await self._end(peer, "lost")

    # -- WHEP --------------------------------------------------------------------------------

    async def watch(self, room_id: int, owner: str, offer: str) -> Peer:
        """Take a viewer's offer; answer it with the room's encoded video and audio."""
        self._refuse_if_closing()
        if self.viewers >= self.config.max_viewers:
            raise Unavailable(
                "This server is showing as many viewers as it can; try again shortly.",
                code=LiveErrorCode.TOO_MANY_VIEWERS,
                retry_after_s=self.config.retry_after_s,
            )
        stage = self.stages.get(room_id)
        if stage is None or stage.publisher is None:
            raise Conflict(
                "The creator is not broadcasting right now.", code=LiveErrorCode.STREAM_NOT_LIVE
            )
        sdp.check_watch_offer(offer)
        peer = self._new_peer(stage, "viewer", owner)
        stage.viewers[peer.id] = peer
        try:
            self._attach_viewer(stage, peer)
            await self._set_offer(peer, offer)
            # m-lines the offer has beyond one video and one audio get nothing.
            for transceiver in peer.pc.getTransceivers():
                if transceiver.sender.track is None:
                    transceiver.direction = "inactive"
            await self._answer(peer)
        except BaseException:
            await self._end(peer, "failed")
            raise
        return peer

    def _attach_viewer(self, stage: Stage, peer: Peer) -> None:
        """Our sending transceivers, made before the offer is applied so aiortc pairs the
        offer's m-lines with them and their codec preferences decide the answer: VP8 and Opus,
        what the renditions are encoded in, whatever order the viewer listed codecs in."""
        for kind, fanout, mimes in (
            ("video", stage.video, ("video/vp8", "video/rtx")),
            ("audio", stage.audio, ("audio/opus",)),
        ):
            track = fanout.subscribe()
            transceiver = peer.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities(kind).codecs
                    if c.mimeType.lower() in mimes
                ]
            )
            if kind == "video":
                # A viewer's PLI/FIR asks its sender for a keyframe; the sender only packs our
                # packets, so pass the request on to the one encoder (aiortc has no hook).
                transceiver.sender._send_keyframe = track.want_keyframe  # type: ignore[method-assign]
            peer.tracks.append(track)

    # -- common ------------------------------------------------------------------------------

    def _new_peer(self, stage: Stage, role: str, owner: str) -> Peer:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.config.ice_servers)))
        peer = Peer(secrets.token_urlsafe(18), stage, role, owner, pc)
        self.open[peer.id] = peer

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "failed":
                self._spawn(self._fail(peer, *failure_of(pc)))
            elif pc.connectionState == "closed":
                self._spawn(self._end(peer, "lost"))

        def check_connected() -> None:
            if pc.connectionState != "connected":
                reason = f"no connection within {self.config.connect_timeout_s:g} s"
                self._spawn(self._fail(peer, LiveErrorCode.CONNECT_TIMEOUT, reason))

        loop = asyncio.get_running_loop()
        peer.deadline = loop.call_later(self.config.connect_timeout_s, check_connected)
        return peer

    async def _set_offer(self, peer: Peer, offer: str) -> None:
        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        except OperationError as exc:  # nothing in common, e.g. only H.264 High profile
            raise Invalid(
                f"The offer has no codec this server can use: {exc}",
                code=LiveErrorCode.UNSUPPORTED_CODEC,
            ) from None
        except (ValueError, KeyError, IndexError, TypeError, AssertionError) as exc:
            # aiortc's parser reports a bad offer with whatever its code tripped on.
            raise Invalid(
                f"The offer could not be used: {exc}", code=LiveErrorCode.INVALID_SDP
            ) from None
        self._still_open(peer)

    async def _answer(self, peer: Peer) -> None:
        pc = peer.pc
        try:
            dtls.prefer_dtls_server(pc)  # a=setup:passive, whatever the offerer's TLS stack
            # aiortc gathers every candidate before it returns: the answer is complete.
            await pc.setLocalDescription(await pc.createAnswer())
        except OperationError as exc:
            raise Invalid(
                f"The offer has no codec this server can use: {exc}",
                code=LiveErrorCode.UNSUPPORTED_CODEC,
            ) from None
        except InvalidStateError:
            self._still_open(peer)
            raise
        self._still_open(peer)
        peer.answer = pc.localDescription.sdp

    def _still_open(self, peer: Peer) -> None:
        # Shutdown, the room ending or the connect deadline can end a peer while its
        # request is still being answered.
        if peer.ended:
            raise Unavailable(
                "The session was closed while it was being set up; try again.",
                code=LiveErrorCode.SESSION_CLOSED,
                retry_after_s=1,
            )

    def _stage(self, room_id: int) -> Stage:
        stage = self.stages.get(room_id)
        if stage is None:
            stage = Stage(room_id, VideoRendition(self.config.profile), AudioRendition())
            self.stages[room_id] = stage
        return stage

    async def _fail(self, peer: Peer, code: LiveErrorCode, reason: str) -> None:
        """The peer never connected, or its connection failed: say why (the log, and the
        creator's studio for a publisher), then end it."""
        if peer.ended:
            return
        log.warning(
            "%s %s in room %s failed: %s (%s)",
            peer.role,
            peer.id,
            peer.room_id,
            reason,
            code,
        )
        await self._end(peer, "lost")  # for the room: the creator's video went
        self.ended[peer.id] = code  # for a late DELETE: why
        if peer.role == "publisher" and self._on_failed is not None:
            try:
                await self._on_failed(peer.room_id, peer.owner, code, reason)
            except Exception:
                log.exception("could not tell room %s's creator its encoder failed", peer.room_id)

    def find(self, room_id: int, peer_id: str, role: str, owner: str) -> Peer:
        peer = self.open.get(peer_id)
        if peer is None and peer_id in self.ended:
            raise NotFound(
                f"This session has ended ({self.ended[peer_id]}).",
                code=LiveErrorCode.SESSION_ENDED,
                reason=self.ended[peer_id],
            )
        if peer is None or (peer.room_id, peer.role, peer.owner) != (
            room_id,
            role,
            owner,
        ):
            raise NotFound("No such session.", code=LiveErrorCode.SESSION_NOT_FOUND)
        return peer

    async def hang_up(self, peer: Peer) -> None:
        await self._end(peer, "stopped")

    async def _end(self, peer: Peer, reason: str) -> None:
        if peer.ended:
            return
        peer.ended = True
        self.open.pop(peer.id, None)
        self.ended[peer.id] = reason
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)
        if peer.deadline is not None:
            peer.deadline.cancel()
        if peer.keeper is not None and peer.keeper is not asyncio.current_task():
            peer.keeper.cancel()
        stage = peer.stage
        for track in peer.tracks:
            track.stop()
        for fanout in (stage.video, stage.audio):
            fanout.tracks.difference_update(peer.tracks)
        stage.viewers.pop(peer.id, None)
        with contextlib.suppress(Exception):
            await peer.pc.close()
        if stage.publisher is peer:
            await self._publisher_gone(stage, peer, reason)

    async def _publisher_gone(self, stage: Stage, peer: Peer, reason: str) -> None:
        stage.publisher = None
        pumps, stage.pumps = stage.pumps, []
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        if peer.started:
            try:
                await self._on_ended(stage.room_id, reason)
            except Exception:  # the video is gone either way; viewers also see it stop
                log.exception("could not tell room %s its stream ended", stage.room_id)
        # After telling the room: a claimless stream is one the sweeper ends as lost.
        with contextlib.suppress(Exception):
            await self._lock.release(stage.room_id, peer.id)
        if stage.publisher is None and (not stage.viewers or self._closing):
            await self._close_stage(stage)
        else:
            loop = asyncio.get_running_loop()
            stage.grace = loop.call_later(
                self.config.publisher_grace_s,
                lambda: self._spawn(self._grace_over(stage)),
            )

    async def _grace_over(self, stage: Stage) -> None:
        if stage.publisher is None and self.stages.get(stage.room_id) is stage:
            await self._close_stage(stage)

    async def _close_stage(self, stage: Stage) -> None:
        if self.stages.get(stage.room_id) is stage:
            del self.stages[stage.room_id]
        if stage.grace is not None:
            stage.grace.cancel()
        peers = list(stage.viewers.values())
        if stage.publisher is not None:
            peers.append(stage.publisher)
        await asyncio.gather(*(self._end(peer, "room_ended") for peer in peers))
        stage.video.stop()
        stage.audio.stop()

    async def end_room(self, room_id: int) -> None:
        """The room ended: everyone here hangs up."""
        stage = self.stages.get(room_id)
        if stage is not None:
            await self._close_stage(stage)

    async def close(self) -> None:
        """Shutdown: every peer connection closed, every task of ours finished."""
        self._closing = True
        for stage in list(self.stages.values()):
            if stage.publisher is not None:
                await self._end(stage.publisher, "shutdown")
        await asyncio.gather(*(self._close_stage(s) for s in list(self.stages.values())))
        await asyncio.gather(*(self._end(peer, "shutdown") for peer in list(self.open.values())))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise Unavailable(
                "This server is shutting down.",
                code=LiveErrorCode.SHUTTING_DOWN,
                retry_after_s=1,
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def failure_of(pc: RTCPeerConnection) -> tuple[LiveErrorCode, str]:
    """Why a peer connection failed, as (code, reason for a person)."""
    if pc.iceConnectionState == "failed":
        return LiveErrorCode.ICE_FAILED, (
            "ICE failed: no address pair between the encoder and the server answered "
            "(a firewall in between, or a TURN server is needed)"
        )
    return LiveErrorCode.DTLS_FAILED, (
        "DTLS failed: the encrypted handshake did not complete (the encoder's certificate "
        "did not match its offer's fingerprint, or no cipher suite was shared)"
    )
