"""The cross-node bus: each node subscribes to the rooms it serves, a room's events channel with
SSUBSCRIBE (sharded pub/sub: on a Redis Cluster each message goes to the one shard that owns the
room's slot, not to every node) and its notices channel with SUBSCRIBE (messages from Functions
of other slots); it hands each room's events to its local viewers in sequence order
(decision 0037), and each nudge (a deal's stock changed) to the gateway (decision 0048).

A joiner's room is followed before its snapshot is read, and ``follow`` returns only once the
listener has read Redis's confirmation of both subscriptions (or after CONFIRM_TIMEOUT_S):
redis-py's subscribe calls only send the command, and the snapshot is read on another
connection, so Redis could otherwise run the read first and drop the events published in
between for this node, where nothing can see the gap while the joiner is still joining.

Redis pub/sub delivers at most once. A node that sees a gap in a room's numbers fetches the
missing events from the room's log first, and the gateway's tick fills a room from its log
whatever the bus brought; a node whose subscription broke closes its viewers with 4002 so each
resumes from its own last sequence number (nothing is missed either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub

from kernel.redis_client import connect
from live.hub import Hub, LocalRoom
from live.keys import LiveKeys
from live.protocol import CLOSE_BANNED, CLOSE_RESYNC
from live.store import NUDGE, RoomStore

BANNED = b'{"type":"banned"'  # RoomStore.ban's message to the banned user's connections
log = logging.getLogger("livecart.bus")
IDLE_PING_S = 5.0
PONG_TIMEOUT_S = 5.0
MESSAGE_TYPES = {"message", "smessage"}
SUBSCRIBED_TYPES = {"subscribe", "ssubscribe"}  # Redis's confirmation of a (S)SUBSCRIBE
# The longest a join waits for its room's subscriptions to be confirmed: past it, a slow or
# failing Redis must not hold joins; the room is heard late at worst (the ticker fills it).
CONFIRM_TIMEOUT_S = 2.0
# A cluster's sharded subscriptions are read by polling each shard's connection in turn, a
# slice of this each: the most a message waits behind an idle shard, and the most a new room's
# subscription waits for the poll holding that connection.
CLUSTER_POLL_S = 0.05
UNFOLLOW_EVERY_S = 5.0  # rooms with no viewer left here are unsubscribed this often


def _unheard(room_id: int) -> None:
    """No gateway listens: the room moves at its next tick."""


class RoomBus:
    def __init__(self, redis_url: str, keys: LiveKeys, store: RoomStore, hub: Hub) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.store = store
        self.hub = hub
        self.ready = asyncio.Event()
        self.received = 0
        self.name = f"livecart-bus-{keys.prefix}-{id(self):x}"
        self.pubsub: PubSub | None = None
        self.following: set[int] = set()
        self._subscribed = asyncio.Event()  # a first subscription made the connection
        # Rooms whose subscriptions Redis has not confirmed yet: the channels still to hear of,
        # and an event set when none is left, which every joiner of the room waits on. (An
        # event, not a future: a joiner's timed-out wait must not cancel the others'.)
        self._confirming: dict[int, tuple[set[bytes], asyncio.Event]] = {}
        # Told the room of each nudge heard (a deal's stock changed: RoomStore.nudge); the
        # gateway moves the room now (decision 0048). Must not block.
        self.nudged: Callable[[int], None] = _unheard

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            # Bytes in, bytes out; named, so CLIENT LIST tells a node's bus connections apart.
            client = connect(self.redis_url, decode_responses=False, client_name=self.name)
            try:
                # Subscribe confirmations are read too: ``follow`` waits for its room's.
                async with client.pubsub() as pubsub:
                    self.pubsub, self.following = pubsub, set()
                    self._subscribed.clear()
                    await self._subscribe(pubsub, set(self.hub.rooms))
                    if self.ready.is_set():
                        self._resync_everyone()  # we may have missed events while away
                    self.ready.set()
                    backoff = 0.1
                    if isinstance(pubsub, ClusterPubSub):
                        await self._listen_cluster(pubsub)
                    else:
                        await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room bus subscription failed; resubscribing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.pubsub = None
                # Nothing will confirm a subscription of this connection now: let its joiners
                # go on (the new subscription resyncs every viewer here anyway).
                self._stop_confirming(self._confirming.keys())
                await client.aclose()

    async def follow(self, room_id: int) -> None:
        """Subscribe to a room a viewer joins here, before its snapshot is read, and return
        once Redis has confirmed the subscriptions: every event after the snapshot then
        arrives by the bus (or the log, if the bus drops it). Sending SSUBSCRIBE is not
        enough: the snapshot is read on another connection, which Redis may serve first.
        A second joiner of a room still being subscribed waits for the same confirmation.
        After CONFIRM_TIMEOUT_S the join goes on with a warning rather than hang. A room the
        subscription is being remade for is subscribed by ``run`` with the rest."""
        pubsub = self.pubsub
        if pubsub is None:
            return
        if room_id not in self.following:
            try:
                await self._subscribe(pubsub, {room_id})
            except Exception:  # the reader fails on the same connection and resubscribes all
                log.warning("room %s: could not subscribe now", room_id, exc_info=True)
                return
        confirming = self._confirming.get(room_id)
        if confirming is None:  # confirmed already
            return
        try:
            await asyncio.wait_for(confirming[1].wait(), CONFIRM_TIMEOUT_S)
        except TimeoutError:
            log.warning("room %s: subscription not confirmed in %s s", room_id, CONFIRM_TIMEOUT_S)
            if self._confirming.get(room_id) is confirming:  # not a new subscription's
                self._stop_confirming([room_id])  # its other joiners go on too

    async def _subscribe(self, pubsub: PubSub, room_ids: set[int]) -> None:
        fresh = sorted(room_ids - self.following)
        if not fresh:
            return
        self.following.update(fresh)
        self._subscribed.set()
        rooms = [self.keys.room(room_id) for room_id in fresh]
        # Before sending: the listener may read a confirmation before the send returns.
        for room_id, k in zip(fresh, rooms, strict=True):
            channels = {k.channel.encode(), k.notices.encode()}
            self._confirming[room_id] = (channels, asyncio.Event())
        await pubsub.ssubscribe(*(k.channel for k in rooms))
        await pubsub.subscribe(*(k.notices for k in rooms))

    async def _unfollow_left(self, pubsub: PubSub) -> None:
        """Unsubscribe from rooms nobody here watches any more. A room whose subscription is
        not confirmed yet is left for a later round: its confirmation, read after a new
        subscription of the room, would be taken for the new one's."""
        left = sorted(self.following - self.hub.rooms.keys() - self._confirming.keys())
        if not left:
            return
        self.following.difference_update(left)
        rooms = [self.keys.room(room_id) for room_id in left]
        await pubsub.sunsubscribe(*(k.channel for k in rooms))
        await pubsub.unsubscribe(*(k.notices for k in rooms))

    async def _listen(self, pubsub: PubSub) -> None:
        """Deliver messages until the subscription fails. A quiet subscription is pinged: one
        that does not answer is half-open (a silent network failure) and is replaced."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged_at: float | None = None
        next_unfollow = heard + UNFOLLOW_EVERY_S
        while True:
            if pubsub.connection is None:  # no room followed yet: no connection to read
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._subscribed.wait(), 1.0)
                message, heard = None, loop.time()
            else:
                message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is not None:
                heard, pinged_at = now, None
                await self._deliver(message)
            elif pubsub.connection is None:
                pass
            elif pinged_at is None and now - heard > IDLE_PING_S:
                await pubsub.ping()
                pinged_at = now
            elif pinged_at is not None and now - pinged_at > PONG_TIMEOUT_S:
                raise ConnectionError("the room bus stopped answering pings")
            if now > next_unfollow:
                next_unfollow = now + UNFOLLOW_EVERY_S
                await self._unfollow_left(pubsub)

    async def _listen_cluster(self, pubsub: ClusterPubSub) -> None:
        """Deliver messages until the subscription fails. The cluster client follows a shard
        channel to its slot's new owner after a failover or a slot move by itself; the plain
        notices subscription, on one node, raises when that node goes, and is remade."""
        loop = asyncio.get_running_loop()
        next_unfollow = loop.time() + UNFOLLOW_EVERY_S
        while True:
            began = loop.time()
            message: Any = None
            if pubsub.node_pubsub_mapping:
                message = await pubsub.get_sharded_message(timeout=CLUSTER_POLL_S)
            # The plain (notices) subscription's connection: not there until its first
            # SUBSCRIBE, which ``follow`` sends just after the room's SSUBSCRIBE.
            if message is None and pubsub.connection is not None:
                message = await pubsub.get_message(timeout=0.0)
            if message is not None:
                await self._deliver(message)
            elif loop.time() - began < CLUSTER_POLL_S / 2:
                # Nothing read and nothing waited for (no connection open yet, or a shard in
                # its cool-off): without this the loop would never give the event loop back.
                await asyncio.sleep(CLUSTER_POLL_S)
            if loop.time() > next_unfollow:
                next_unfollow = loop.time() + UNFOLLOW_EVERY_S
                await self._unfollow_left(pubsub)

    async def _deliver(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind in MESSAGE_TYPES:
            await self.dispatch_safely(message["channel"], message["data"])
        elif kind in SUBSCRIBED_TYPES:
            self._confirmed(message["channel"])

    def _confirmed(self, channel: bytes) -> None:
        """Redis subscribed this connection to ``channel``: a room's joiners go on once both
        of its channels are. (A confirmation of a room not waited for, as a cluster shard's
        reconnect replays its subscriptions, is nothing to do.)"""
        room_id = self.keys.room_of_channel(channel)
        if room_id is None or room_id not in self._confirming:
            return
        channels, _ = self._confirming[room_id]
        channels.discard(channel)
        if not channels:
            self._stop_confirming([room_id])

    def _stop_confirming(self, room_ids: Iterable[int]) -> None:
        """Let the joiners waiting for these rooms' subscriptions go on, and forget them."""
        for room_id in list(room_ids):
            confirming = self._confirming.pop(room_id, None)
            if confirming is not None:
                confirming[1].set()

    async def dispatch_safely(self, channel: bytes, data: bytes) -> None:
        """A failed delivery (Redis busy during a gap fill, say) is left to the ticker, which
        fills every room from its log within a tick; nobody is disconnected for it."""
        try:
            await self.dispatch(channel, data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "room %s: could not deliver an event now", self.keys.room_of_channel(channel)
            )

    async def dispatch(self, channel: bytes, data: bytes) -> None:
        room_id = self.keys.room_of_channel(channel)
        room = self.hub.room(room_id) if room_id is not None else None
        if room is None:
            return
        self.received += 1
        if data == NUDGE:
            self.nudged(room.id)
            return
        head, _, payload = data.partition(b" ")
        if head[:1] == b"@":
            user = head[1:].decode()
            banned = payload.startswith(BANNED)
            for viewer in room.viewers_of(user):
                if banned:  # the creator banned them: out, now (a new hello is refused)
                    self.hub.leave(viewer)
                    with contextlib.suppress(Exception):
                        viewer.outlet.drop(CLOSE_BANNED, "banned from this room")
                else:
                    self.hub.send_later(viewer, payload)
            return
        seq = int(head)
        # What the viewers here have: the last event, or (none heard here yet) the number
        # their snapshots were read at. The room's subscription can start a moment after a
        # joiner's snapshot was read (two connections), so the first event heard here may
        # already come after a gap.
        after = room.delivered_upto()
        if after is not None and seq > after + 1 and not await self.catch_up(room, seq - 1):
            return
        room.add_event(seq, payload)

    async def catch_up(self, room: LocalRoom, upto: int) -> bool:
        """Deliver, from the log, the events after the room's last one up to ``upto`` (a gap
        in the bus, or an event the bus has not brought yet: either way once, in order)."""
        after = room.delivered_upto()
        if after is None or upto <= after:
            return True
        missing = await self.store.events_between(room.id, after, upto)
        if missing is None:
            log.warning("room %s: events %s..%s are gone; viewers resync", room.id, after, upto)
            self._resync(room)
            return False
        for seq, payload in enumerate(missing, start=after + 1):
            room.add_event(seq, payload)
        return True

    def _resync(self, room: LocalRoom) -> None:
        for viewer in (*room.joined, *room.joining):
            self.hub.leave(viewer)
            with contextlib.suppress(Exception):
                viewer.outlet.drop(CLOSE_RESYNC, "reconnect with your last seq")

    def _resync_everyone(self) -> None:
        for room in list(self.hub.rooms.values()):
            self._resync(room)
