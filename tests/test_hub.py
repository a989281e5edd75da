"""The hub in process, with outlets that keep what they are sent: one frame for everyone,
chat and figures coalesced, a viewer's replay never overtaken, slow viewers dropped alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from live.hub import Hub, LocalRoom, Viewer
from live.protocol import CLOSE_TOO_SLOW
from tests.helpers import until

ROOM = 7
INTERVAL_S = 0.05
MAX_BUFFER = 1000


class KeptOutlet:
    """An outlet that keeps every frame; ``backlog`` stands for bytes the socket has not sent."""

    def __init__(self, backlog: int = 0) -> None:
        self.frames: list[bytes] = []
        self.written_at: list[float] = []  # the event loop's clock
        self.backlog = backlog
        self.close_code: int | None = None  # set when the hub drops the connection

    def write(self, data: bytes) -> None:
        self.frames.append(data)
        self.written_at.append(asyncio.get_running_loop().time())

    def buffered(self) -> int:
        return self.backlog

    def drop(self, code: int, reason: str, grace_s: float = 1.0) -> None:
        self.close_code = code

    def batches(self) -> list[list[dict[str, Any]]]:
        """Each frame's messages (a frame is an unmasked text frame holding a JSON array)."""
        return [orjson.loads(unframe(frame)) for frame in self.frames]

    def messages(self) -> list[dict[str, Any]]:
        return [m for batch in self.batches() for m in batch]


def unframe(frame: bytes) -> bytes:
    assert frame[0] == 0x81, frame[:2]  # FIN + text, as RFC 6455 section 5.2 lays it out
    size, start = frame[1], 2
    if size == 126:
        size, start = int.from_bytes(frame[2:4], "big"), 4
    elif size == 127:
        size, start = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == start + size
    return frame[start:]


def event(seq: int, kind: str = "pin", **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, "seq": seq, **fields})


def seqs(outlet: KeptOutlet) -> list[int]:
    return [m["seq"] for m in outlet.messages() if "seq" in m]


def live_viewer(hub: Hub, user: str = "u1", *, backlog: int = 0, upto: int = 0) -> Viewer:
    """A viewer that joined and got its replay up to ``upto``."""
    viewer = Viewer(KeptOutlet(backlog), ROOM, user, "viewer")
    hub.join(viewer)
    hub.caught_up(viewer, upto)
    return viewer


def outlet(viewer: Viewer) -> KeptOutlet:
    assert isinstance(viewer.outlet, KeptOutlet)
    return viewer.outlet


def room_of(hub: Hub) -> LocalRoom:
    room = hub.room(ROOM)
    assert room is not None
    return room


async def test_an_event_leaves_at_once_as_one_frame_for_every_viewer() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    viewers = [live_viewer(hub, f"u{i}") for i in range(3)]
    room_of(hub).add_event(1, event(1))
    frames = [outlet(v).frames for v in viewers]
    assert frames == [frames[0]] * 3 and len(frames[0]) == 1  # written before any await
    assert all(f[0] is frames[0][0] for f in frames)  # framed once, the same bytes for all
    assert outlet(viewers[0]).messages() == [{"type": "pin", "seq": 1}]


async def test_chat_waits_for_the_tick_and_leaves_with_the_next_event_in_order() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    viewer = live_viewer(hub)
    room = room_of(hub)
    room.add_event(1, event(1, "chat", text="a"))
    room.add_event(2, event(2, "chat", text="b"))
    assert outlet(viewer).frames == []  # chat is coalesced, not sent at once
    await until(has_frames(outlet(viewer), 1), "the chat frame")
    assert outlet(viewer).batches() == [[event_json(1, "a"), event_json(2, "b")]]
    room.add_event(3, event(3, "chat", text="c"))
    room.add_event(4, event(4))  # urgent: takes the pending chat line with it
    assert [seqs_of(batch) for batch in outlet(viewer).batches()] == [[1, 2], [3, 4]]


async def test_chat_frames_leave_at_most_once_an_interval() -> None:
    interval = 0.3  # well above until()'s polling step, which would hide an early frame
    hub = Hub(max_buffer=MAX_BUFFER, interval=interval)
    viewer = live_viewer(hub)
    room = room_of(hub)
    room.add_event(1, event(1, "chat", text="a"))
    await until(has_frames(outlet(viewer), 1), "the first chat frame")
    room.add_event(2, event(2, "chat", text="b"))
    await until(has_frames(outlet(viewer), 2), "the second chat frame")
    first, second = outlet(viewer).written_at
    # The loop may run a timer up to its clock resolution early: allow a millisecond.
    assert second - first >= interval - 0.001


async def test_figures_keep_only_their_newest_value_and_unchanged_ones_are_not_resent() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    viewer = live_viewer(hub)
    room = room_of(hub)
    room.set_latest("viewers", b'{"type":"viewers","count":1}')
    room.set_latest("viewers", b'{"type":"viewers","count":2}')
    await until(has_frames(outlet(viewer), 1), "the viewers figure")
    room.set_latest("viewers", b'{"type":"viewers","count":2}')  # the same value again
    room.add_event(1, event(1))  # an urgent flush would carry a dirty figure along
    assert outlet(viewer).batches() == [
        [{"type": "viewers", "count": 2}],
        [{"type": "pin", "seq": 1}],
    ]


async def test_a_slow_viewer_is_dropped_alone_and_the_others_still_get_the_frame() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    fast = live_viewer(hub, "fast")
    slow = live_viewer(hub, "slow", backlog=MAX_BUFFER + 1)
    room_of(hub).add_event(1, event(1))
    assert seqs(outlet(fast)) == [1]
    assert outlet(slow).frames == []
    assert outlet(slow).close_code == CLOSE_TOO_SLOW
    assert (hub.dropped, hub.is_member(slow), hub.is_member(fast)) == (1, False, True)
    room_of(hub).add_event(2, event(2))
    assert (seqs(outlet(fast)), outlet(slow).frames) == ([1, 2], [])


async def test_what_arrives_during_a_replay_follows_it_without_duplicates() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    watching = live_viewer(hub, "watching")
    joiner = Viewer(KeptOutlet(), ROOM, "joiner", "viewer")
    room = hub.join(joiner)
    room.add_event(1, event(1))
    room.add_event(2, event(2))
    hub.send_later(joiner, b'{"type":"holds","holds":[]}')  # a reply for the joiner alone
    assert outlet(joiner).frames == []  # nothing overtakes the replay it is being sent
    hub.caught_up(joiner, 1)  # its replay had event 1
    assert outlet(joiner).messages() == [
        {"type": "pin", "seq": 2},
        {"type": "holds", "holds": []},
    ]
    assert seqs(outlet(watching)) == [1, 2]


async def test_events_a_viewers_replay_had_are_not_sent_to_it_again() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    early = live_viewer(hub, "early")
    room = room_of(hub)
    room.add_event(1, event(1))
    late = live_viewer(hub, "late", upto=3)  # its replay ran ahead of this node: up to 3
    for seq in (2, 3, 4):
        room.add_event(seq, event(seq))
    room.add_event(3, event(3))  # brought twice (the bus and a catch-up read): ignored
    assert seqs(outlet(early)) == [1, 2, 3, 4]
    assert seqs(outlet(late)) == [4]


async def test_a_room_goes_when_its_last_viewer_leaves_and_staff_is_not_audience() -> None:
    hub = Hub(max_buffer=MAX_BUFFER, interval=INTERVAL_S)
    guest = live_viewer(hub, "guest")
    creator = Viewer(KeptOutlet(), ROOM, "creator", "creator")
    hub.join(creator)
    room = room_of(hub)
    assert (room.size, room.audience, room.hosts, hub.counts()) == (2, 1, 1, {ROOM: 2})
    hub.leave(creator)
    hub.leave(creator)  # twice: a no-op
    assert (room.size, room.audience, room.hosts) == (1, 1, 0)
    hub.leave(guest)
    assert hub.room(ROOM) is None and hub.prune({ROOM, 8}) == {ROOM, 8}


def event_json(seq: int, text: str) -> dict[str, Any]:
    return {"type": "chat", "seq": seq, "text": text}


def seqs_of(batch: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in batch]


def has_frames(kept: KeptOutlet, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(kept.frames) >= count

    return check
