"""The states of a room and of a flash deal as its room shows it, and the moves between them.
The rules in ``live/rules.py`` make the moves; rooms.lua reads the room's status too.

    room:        scheduled -> live -> ended;   scheduled -> ended
    flash deal:  scheduled -> live -> ended;   scheduled -> ended

A flash deal's status is the room's view, moved on Redis's clock by ``rules.tick``: ``scheduled``
while its countdown runs, ``live`` while its window is open, ``ended`` after. Its record in SQL
went live (units allocated, stock loaded) before the countdown began: that is its
``catalog.deal_status.DealStatus``, a different fact.
"""

from __future__ import annotations

import enum


class RoomStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class FlashDealStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


ROOM_TRANSITIONS: dict[RoomStatus, frozenset[RoomStatus]] = {
    RoomStatus.SCHEDULED: frozenset({RoomStatus.LIVE, RoomStatus.ENDED}),
    RoomStatus.LIVE: frozenset({RoomStatus.ENDED}),
    RoomStatus.ENDED: frozenset(),
}

FLASH_DEAL_TRANSITIONS: dict[FlashDealStatus, frozenset[FlashDealStatus]] = {
    FlashDealStatus.SCHEDULED: frozenset({FlashDealStatus.LIVE, FlashDealStatus.ENDED}),
    FlashDealStatus.LIVE: frozenset({FlashDealStatus.ENDED}),
    FlashDealStatus.ENDED: frozenset(),
}

# Deals a room still runs: the ones its end, or a stop, must stop in the stores.
RUNNING = frozenset({FlashDealStatus.SCHEDULED, FlashDealStatus.LIVE})
