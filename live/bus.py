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
            client = Redis.from_url(self.redis_url)  # bytes in, bytes out: no decoding
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self.keys.channel_pattern)
                    if self.ready.is_set():
                        self._resync_everyone()  # we may have missed events while away
                    self.ready.set()
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            await self.dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room bus subscription failed; resubscribing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await client.aclose()

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
                self.hub.send(viewer, [payload])
            return
        seq = int(head)
        if room.last_seq is not None:
            if seq <= room.last_seq:
                return
            if seq > room.last_seq + 1 and not await self._fill(room, seq):
                return
        room.add_event(seq, payload)

    async def _fill(self, room: LocalRoom, seq: int) -> bool:
        assert room.last_seq is not None
        missing = await self.store.events_after(room.id, room.last_seq, seq - room.last_seq - 1)
        if missing is None or len(missing) != seq - room.last_seq - 1:
            log.warning("room %s: events before %s are gone; viewers resync", room.id, seq)
            self._resync(room)
            return False
        for offset, payload in enumerate(missing, start=room.last_seq + 1):
            room.add_event(offset, payload)
        return True

    def _resync(self, room: LocalRoom) -> None:
        for viewer in (*room.live, *room.joining):
            self.hub.leave(viewer)
            viewer.outlet.drop(CLOSE_RESYNC, "reconnect with your last seq")

    def _resync_everyone(self) -> None:
        for room in list(self.hub.rooms.values()):
            self._resync(room)
