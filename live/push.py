"""Stock pushed to rooms (decision 0048): when a call on the request path changes what a deal
has left (``HoldStore.stock_changed``), the deal's room is nudged on the bus, and every node
that serves the room moves it at once (``Gateway.nudge``) instead of at its next tick.

Nudges are coalesced per deal (kernel/nudge.py): a storm of reservations sends a few nudges,
not one per batch. A nudge lost by pub/sub is made good by the room's next tick.
"""

from __future__ import annotations

from kernel.nudge import Nudges
from live.store import RoomStore

# Deal -> room links remembered (a deal's room never changes); the memory is emptied past it.
ROOMS_KEPT = 10_000


class StockPush:
    def __init__(self, store: RoomStore) -> None:
        self.store = store
        self._room_of: dict[int, int] = {}
        self.nudges = Nudges(self._tell_room, "deal")

    def deal_changed(self, deal_id: int) -> None:
        """A ``HoldStore.stock_changed``: never blocks, never raises."""
        self.nudges.nudge(deal_id)

    async def _tell_room(self, deal_id: int) -> None:
        room_id = await self._room(deal_id)
        if room_id is not None:
            await self.store.nudge(room_id)

    async def _room(self, deal_id: int) -> int | None:
        room_id = self._room_of.get(deal_id)
        if room_id is None:
            # None: a deal of no room (a shelf's), or not linked yet; asked again next time.
            room_id = await self.store.room_of_deal(deal_id)
            if room_id is not None:
                if len(self._room_of) >= ROOMS_KEPT:
                    self._room_of.clear()
                self._room_of[deal_id] = room_id
        return room_id
