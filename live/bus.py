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

from live.hub import Hub, LocalRoom
from live.keys import LiveKeys
from live.protocol import CLOSE_RESYNC
from live.store import RoomStore

log = logging.getLogger("livecart.bus")


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
            # Bytes in, bytes out (no decoding); health checks notice a half-open connection.
            client = Redis.from_url(self.redis_url, health_check_interval=15, socket_keepalive=True)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self.keys.channel_pattern)
                    if self.ready.is_set():
                        self._resync_everyone()  # we may have missed events while away
                    self.ready.set()
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            await self.dispatch_safely(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room bus subscription failed; resubscribing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await client.aclose()

    async def dispatch_safely(self, channel: bytes, data: bytes) -> None:
        try:
            await self.dispatch(channel, data)
        except asyncio.CancelledError:
            raise
        except Exception:
            room_id = self.keys.room_of_channel(channel)
            room = self.hub.room(room_id) if room_id is not None else None
            log.exception("room %s: could not deliver an event; its viewers resync", room_id)
            if room is not None:
                self._resync(room)

    async def dispatch(self, channel: bytes, data: bytes) -> None:
        room_id = self.keys.room_of_channel(channel)
        room = self.hub.room(room_id) if room_id is not None else None
        if room is None:
            return
        self.received += 1
        head, _, payload = data.partition(b" ")
        if head[:1] == b"@":
            user = head[1:].decode()
            for viewer in room.viewers_of(user):
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
        after = room.last_seq
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
        for viewer in (*room.live, *room.joining):
            self.hub.leave(viewer)
            with contextlib.suppress(Exception):
                viewer.outlet.drop(CLOSE_RESYNC, "reconnect with your last seq")

    def _resync_everyone(self) -> None:
        for room in list(self.hub.rooms.values()):
            self._resync(room)
