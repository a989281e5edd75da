"""A deal's lifecycle as SQL records it, and the moves allowed between its states. Pure: no I/O.

    scheduled -> live -> ended -> settled;   live -> settled (its window ran out, not stopped)

``live``: its units are allocated on the SKU and its stock is loaded into Redis. ``ended``: the
seller (or the room's end) stopped it; holds being paid for may still sell. ``settled``: nothing
more can sell, and the unsold units went back to the SKU. A deal that is only scheduled is never
ended: it has nothing to give back. ``catalog.service`` makes each move with one function
(``start_deal``, ``end_deal``, ``settle_deal``), as a guarded UPDATE from ``sources(target)``.
"""

from __future__ import annotations

import enum

from catalog.error_codes import CatalogErrorCode
from kernel.errors import Conflict


class DealStatus(enum.StrEnum):
    """``scheduled``; ``live`` once started (units allocated, stock loaded); ``ended`` once
    stopped; ``settled`` once nothing more can sell and unsold units went back to the SKU.
    What a viewer can do now is the deal's phase."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    SETTLED = "settled"


S = DealStatus

TRANSITIONS: dict[DealStatus, frozenset[DealStatus]] = {
    S.SCHEDULED: frozenset({S.LIVE}),
    S.LIVE: frozenset({S.ENDED, S.SETTLED}),
    S.ENDED: frozenset({S.SETTLED}),
    S.SETTLED: frozenset(),
}

# A refused start or stop is named after the state the move needed: deal_not_scheduled,
# deal_not_live (settling is asked by sweepers and is not refused, only not done).
_REFUSALS: dict[DealStatus, tuple[CatalogErrorCode, str]] = {
    S.LIVE: (CatalogErrorCode.DEAL_NOT_SCHEDULED, "The deal is not scheduled."),
    S.ENDED: (CatalogErrorCode.DEAL_NOT_LIVE, "The deal is not live."),
}


def sources(target: DealStatus) -> tuple[DealStatus, ...]:
    """The states a deal may move to ``target`` from, in a stable order (for SQL ``IN``)."""
    return tuple(s for s in DealStatus if target in TRANSITIONS[s])


def refused(deal_id: int | None, target: DealStatus, message: str = "") -> Conflict:
    """The error for a move to ``target`` that the deal's state does not allow."""
    code, default = _REFUSALS[target]
    return Conflict(message or default, code=code, deal_id=deal_id)
