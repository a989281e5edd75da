"""A hold's states and its record as ``lua/holds.lua`` keeps it. The Lua functions make every
move; this says what the moves are and reads the record, in one place for every Python reader.

    held -> paying -> sold;   held, paying -> expired;   held -> released;   paying -> held

(a declined payment puts the hold back to its own deadline). A shelf hold may also be
``offered``: a unit kept for the first waiter of a sold-out SKU (decision 0036), which lapses
(expired) or is given back (released), or is taken into the waiter's checkout (and deleted:
its unit moves into a priced held hold). Deal holds are never offered.
tests/test_status_vocabulary.py checks that the Lua writes only these states and that
holds.lua's header draws these moves.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class HoldState(enum.StrEnum):
    HELD = "held"
    PAYING = "paying"
    SOLD = "sold"
    EXPIRED = "expired"
    RELEASED = "released"
    OFFERED = "offered"  # shelf only: kept for a waiter, unpriced until they check it out

    @property
    def open(self) -> bool:
        """Held or paying: its units are out of stock and it may still sell or lapse."""
        return bool(TRANSITIONS[self])


H = HoldState

TRANSITIONS: dict[HoldState, frozenset[HoldState]] = {
    H.HELD: frozenset({H.PAYING, H.EXPIRED, H.RELEASED}),
    H.PAYING: frozenset({H.SOLD, H.EXPIRED, H.HELD}),
    H.SOLD: frozenset(),
    H.EXPIRED: frozenset(),
    H.RELEASED: frozenset(),
    H.OFFERED: frozenset({H.EXPIRED, H.RELEASED}),
}
SHELF_ONLY = frozenset({H.OFFERED})


class HoldRecord(NamedTuple):
    """One value of a deal's holds hash: ``state|qty|expires_ms|held_until_ms|attempt|buyer|
    request_id``."""

    state: HoldState
    qty: int
    expires_ms: int
    held_until_ms: int
    attempt: str  # the one payment attempt allowed at a time, "" when none
    buyer: str
    request_id: str

    @classmethod
    def parse(cls, raw: str) -> HoldRecord:
        state, qty, expires, held_until, attempt, buyer, request_id = raw.split("|", 6)
        return cls(
            HoldState(state), int(qty), int(expires), int(held_until), attempt, buyer, request_id
        )
