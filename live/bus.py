"""The cross-node bus: every node subscribes to all rooms' channels (one pattern subscription)
and hands each room's events to its local viewers in sequence order.

Redis pub/sub delivers at most once. A node that sees a gap in a room's numbers fetches the
missing events from the room's log first; a node whose subscription broke closes its viewers
with 4002 so each resumes from its own last sequence number (nothing is missed either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from live.hub import Hub, LocalRoom
from live.keys import LiveKeys
from live.protocol import CLOSE_BANNED, CLOSE_RESYNC
from live.store import RoomStore

BANNED = b'{"type":"banned"'  # RoomStore.ban's message to the banned user's connections
log = logging.getLogger("livecart.bus")
IDLE_PING_S = 5.0
PONG_TIMEOUT_S = 5.0


class RoomBus:
    def __init__(self, redis_url: str, keys: LiveKeys, store: RoomStore, hub: Hub) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.store = store
        self.hub = hub
        self.ready = asyncio.Event()
        self.received = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            client = Redis.from_url(self.redis_url)  # bytes in, bytes out: no decoding
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self.keys.channel_pattern)
                    if self.ready.is_set():
                        self._resync_everyone()  # we may have missed events while away
                    self.ready.set()
                    backoff = 0.1
                    await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room bus subscription failed; resubscribing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await client.aclose()

    async def _listen(self, pubsub: PubSub) -> None:
        """Deliver messages until the subscription fails. A quiet subscription is pinged: one
        that does not answer is half-open (a silent network failure) and is replaced."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is not None:
                heard, pinged_at = now, None
                if message["type"] == "pmessage":
                    await self.dispatch_safely(message["channel"], message["data"])
            elif pinged_at is None and now - heard > IDLE_PING_S:
                await pubsub.ping()
                pinged_at = now
            elif pinged_at is not None and now - pinged_at > PONG_TIMEOUT_S:
                raise ConnectionError("the room bus stopped answering pings")

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
        gap = room.last_seq is not None and seq > room.last_seq + 1
        if gap and not await self.catch_up(room, seq - 1):
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
