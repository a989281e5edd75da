"""One node's viewers, by room, and the fan-out to them.

A room's messages are batched into one frame, framed once, and written to every connection
without awaiting any of them (``Outlet.write`` only appends to the transport's buffer). A viewer
whose unsent bytes pass ``max_buffer`` is dropped with close code 4000 and reconnects with its
last sequence number; nobody else waits for it.

Coalescing: chat lines and the latest-value figures (stock left, viewers, likes) leave at most
once per ``interval`` (100 ms); anything else (a pin, a deal going live, sold out) leaves at once,
taking whatever is pending with it, so order is kept and a viewer gets about ten frames a second
at most however busy the room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from live.frames import message_list, text_frame
from live.protocol import CLOSE_TOO_SLOW

# Event types that wait for the next coalescing tick instead of leaving at once.
COALESCED_PREFIXES = (b'"type":"chat"', b'"type":"chat.deleted"')


class Outlet(Protocol):
    """Where one connection's bytes go. ``write`` must not block or await."""

    def write(self, data: bytes) -> None:
        """Append to the connection's buffer; a no-op once the connection is closing or gone.
        Never raises."""

    def buffered(self) -> int: ...

    def drop(self, code: int, reason: str, grace_s: float = 1.0) -> None:
        """Send a close frame now; cut the connection if the viewer has not answered it within
        ``grace_s`` (a viewer whose buffer overflowed will not read it soon)."""


class Viewer:
    """A connection as the hub sees it. ``catching_up`` holds the messages that arrived while the
    viewer was being sent its replay or snapshot; they are sent after it, without duplicates."""

    __slots__ = ("catching_up", "outlet", "role", "room_id", "user")

    def __init__(self, outlet: Outlet, room_id: int, user: str, role: str) -> None:
        self.outlet = outlet
        self.room_id = room_id
        self.user = user
        self.role = role
        # (seq, message); seq 0 for messages outside the room's numbering
        self.catching_up: list[tuple[int, bytes]] | None = None


class LocalRoom:
    def __init__(self, room_id: int, hub: Hub) -> None:
        self.id = room_id
        self.hub = hub
        # Caught up: they share each frame. Joining: being sent a replay or snapshot first.
        self.joined: set[Viewer] = set()
        self.joining: set[Viewer] = set()
        # Viewers just caught up to a number the bus has not reached yet: events up to it are
        # kept from them (they had them in their replay or snapshot).
        self.floors: dict[Viewer, int] = {}
        self.by_user: dict[str, set[Viewer]] = {}
        self.pending: list[tuple[int, bytes]] = []
        self.latest: dict[str, bytes] = {}
        self.dirty: set[str] = set()
        self.last_flush = 0.0
        self.flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self.last_seq: int | None = None
        # Connections of the creator and other sellers: in the room, but not its audience.
        self.staff = 0
        # Connections of the room's own creator: while there is one, the room is hosted.
        self.hosts = 0

    @property
    def size(self) -> int:
        return len(self.joined) + len(self.joining)

    @property
    def audience(self) -> int:
        """Viewers (guest sessions) here: what the room's viewer count adds up."""
        return self.size - self.staff

    def add_event(self, seq: int, payload: bytes) -> None:
        """A sequenced event, in order; one already seen is ignored (the bus and a catch-up
        read may both bring it)."""
        if self.last_seq is not None and seq <= self.last_seq:
            return
        self.last_seq = seq
        self.pending.append((seq, payload))
        head = payload[:48]
        self._schedule(urgent=not any(p in head for p in COALESCED_PREFIXES))

    def delivered_upto(self) -> int | None:
        """The last event number every viewer here has (or will be kept from), if known."""
        if self.last_seq is None and self.floors and not self.joining:
            # No event reached this room here yet: everyone in it has seen up to its floor.
            return min(self.floors.values())
        return self.last_seq

    def set_latest(self, key: str, payload: bytes) -> None:
        """A figure where only the newest value matters (stock left, viewer count)."""
        if self.latest.get(key) == payload:
            return
        self.latest[key] = payload
        self.dirty.add(key)
        self._schedule(urgent=False)

    def _schedule(self, *, urgent: bool) -> None:
        if urgent:
            if self.flush_handle is not None:
                self.flush_handle.cancel()
            self.flush_handle = None
            self.flush()
            return
        if self.flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self.last_flush + self.hub.interval - loop.time()
        if wait <= 0:
            self.flush_handle = loop.call_soon(self.flush)
        else:
            self.flush_handle = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self.flush_handle = None
        self.last_flush = asyncio.get_running_loop().time()
        events, self.pending = self.pending, []
        messages = [payload for _, payload in events]
        messages += [self.latest[key] for key in self.dirty]
        self.dirty.clear()
        if not messages:
            return
        for viewer in self.joining:
            if viewer.catching_up is not None:
                viewer.catching_up += events
        frame = text_frame(message_list(messages))
        if not self.floors or not events:
            self.hub.fan_out(self.joined, frame)
            return
        # Viewers whose replay or snapshot already has some of these events get their own
        # frame without them; the rest, and every viewer from now on, share one.
        first = events[0][0]
        for viewer, floor in list(self.floors.items()):
            if floor < first:
                del self.floors[viewer]
        self.hub.fan_out(self.joined - self.floors.keys(), frame)
        for viewer, floor in list(self.floors.items()):
            if self.last_seq is not None and self.last_seq >= floor:
                del self.floors[viewer]
            mine = [p for seq, p in events if seq > floor] + messages[len(events) :]
            if mine:
                self.hub.fan_out((viewer,), text_frame(message_list(mine)))

    def forget_latest(self, keep: set[str]) -> None:
        """Drop figures of things that are over (a deal that ended), so joiners don't get them."""
        for key in [k for k in self.latest if k.startswith("stock:") and k not in keep]:
            del self.latest[key]
            self.dirty.discard(key)

    def viewers_of(self, user: str) -> Iterable[Viewer]:
        return tuple(self.by_user.get(user, ()))


class Hub:
    def __init__(self, *, max_buffer: int, interval: float = 0.1) -> None:
        """``max_buffer``: the setting LIVECART_WS_MAX_BUFFER; ``interval``: the protocol's
        coalescing period (docs/protocol.md), not a setting."""
        self.rooms: dict[int, LocalRoom] = {}
        self.max_buffer = max_buffer
        self.interval = interval
        self.dropped = 0

    def room(self, room_id: int) -> LocalRoom | None:
        return self.rooms.get(room_id)

    def join(self, viewer: Viewer) -> LocalRoom:
        """Register before reading the room's log: events from now on are queued for it."""
        room = self.rooms.get(viewer.room_id)
        if room is None:
            room = self.rooms[viewer.room_id] = LocalRoom(viewer.room_id, self)
        viewer.catching_up = []
        room.joining.add(viewer)
        room.staff += viewer.role != "viewer"
        room.hosts += viewer.role == "creator"
        room.by_user.setdefault(viewer.user, set()).add(viewer)
        return room

    def caught_up(self, viewer: Viewer, upto_seq: int) -> None:
        """The viewer has everything up to ``upto_seq``: send what came meanwhile, join the
        room's shared frames. Events up to ``upto_seq`` that reach this node later are kept
        from it."""
        room = self.rooms.get(viewer.room_id)
        if room is None or viewer not in room.joining:
            return  # dropped while joining
        queued = viewer.catching_up or []
        viewer.catching_up = None
        room.joining.discard(viewer)
        messages = [payload for seq, payload in queued if seq == 0 or seq > upto_seq]
        messages += list(room.latest.values())
        room.joined.add(viewer)
        # Events up to upto_seq may still be pending here (chat waiting for the tick) or on
        # their way from the bus: the next frames leave them out for this viewer.
        room.floors[viewer] = upto_seq
        if messages:
            self.fan_out((viewer,), text_frame(message_list(messages)))

    def leave(self, viewer: Viewer) -> None:
        room = self.rooms.get(viewer.room_id)
        if room is None or (viewer not in room.joined and viewer not in room.joining):
            return
        room.staff -= viewer.role != "viewer"
        room.hosts -= viewer.role == "creator"
        room.joined.discard(viewer)
        room.joining.discard(viewer)
        room.floors.pop(viewer, None)
        mine = room.by_user.get(viewer.user)
        if mine is not None:
            mine.discard(viewer)
            if not mine:
                del room.by_user[viewer.user]
        if not room.size:
            if room.flush_handle is not None:
                room.flush_handle.cancel()
            del self.rooms[viewer.room_id]

    def send(self, viewer: Viewer, messages: list[bytes]) -> None:
        """Messages for one viewer (replies, its own holds), written at once."""
        self.fan_out((viewer,), text_frame(message_list(messages)))

    def send_later(self, viewer: Viewer, message: bytes) -> None:
        """A message for one viewer that must not overtake its replay or snapshot."""
        if viewer.catching_up is not None:
            viewer.catching_up.append((0, message))
        else:
            self.send(viewer, [message])

    def fan_out(self, viewers: Iterable[Viewer], frame: bytes) -> None:
        limit = self.max_buffer
        slow: list[Viewer] = []
        for viewer in viewers:
            outlet = viewer.outlet
            if outlet.buffered() > limit:
                slow.append(viewer)
            else:
                outlet.write(frame)
        for viewer in slow:
            if not self.is_member(viewer):
                continue  # dropped already; its gateway Connection has not noticed yet
            self.dropped += 1
            self.leave(viewer)
            viewer.outlet.drop(CLOSE_TOO_SLOW, "too slow: reconnect with your last seq")

    def is_member(self, viewer: Viewer) -> bool:
        room = self.rooms.get(viewer.room_id)
        return room is not None and (viewer in room.joined or viewer in room.joining)

    def prune(self, room_ids: set[int]) -> set[int]:
        """The ids among ``room_ids`` that have no viewers here any more."""
        return room_ids - self.rooms.keys()

    def counts(self) -> dict[int, int]:
        return {room_id: room.size for room_id, room in self.rooms.items()}
