"""What a viewer can do with a deal now: its phase, worked out on every read from the deal's
window, stop flag and stock in Redis (on Redis's clock), never stored. Its state in SQL is a
``catalog.deal_status.DealStatus``; the phase is what the API and the seller center show."""

from __future__ import annotations

import enum

from catalog.deal_status import DealStatus


class DealPhase(enum.StrEnum):
    """``upcoming`` before its window, ``open`` while units can be reserved, ``sold_out`` while
    none are left (units may come back when holds lapse), ``ended`` once stopped or over."""

    UPCOMING = "upcoming"
    OPEN = "open"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


def phase_at(
    now_ms: int, *, starts_ms: int, ends_ms: int, stopped: bool, available: int
) -> DealPhase:
    """The phase of a deal loaded into Redis, at ``now_ms`` on Redis's clock."""
    if stopped or now_ms >= ends_ms:
        return DealPhase.ENDED
    if now_ms < starts_ms:
        return DealPhase.UPCOMING
    return DealPhase.OPEN if available > 0 else DealPhase.SOLD_OUT


def phase_unloaded(status: str) -> DealPhase:
    """The phase of a deal Redis has no stock for: upcoming until it starts; over otherwise
    (settled and forgotten, or started in SQL with the load into Redis still to be retried)."""
    return DealPhase.UPCOMING if status == DealStatus.SCHEDULED else DealPhase.ENDED
