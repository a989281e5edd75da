"""A giveaway's terms and its draw (decision 0032). Pure: no I/O.

The draw is verifiable: before anyone enters, the room is told ``commitment`` = SHA-256 of a
random seed; after the close the seed is revealed with the entries. Anyone recomputes:

    entries_hash = sha256("\\n".join(sorted(entries)))          (hex; entries are user ids)
    winner       = sorted(entries)[int(sha256(seed + ":" + entries_hash), 16) % len(entries)]

and checks sha256(seed) == commitment. The seed is fixed before the entries exist and the
entries are fixed (by Redis's clock) before the seed is revealed, so neither side can steer it.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from kernel.errors import Invalid
from live.error_codes import LiveErrorCode

MIN_DURATION_S, MAX_DURATION_S = 10, 3600
MAX_WATCH_MIN = 120


class GiveawayState(enum.StrEnum):
    """open -> drawn (a winner; the prize is held for them) -> claimed (ordered) | unclaimed
    (the hold lapsed); open -> void (nobody entered)."""

    OPEN = "open"
    DRAWN = "drawn"
    CLAIMED = "claimed"
    UNCLAIMED = "unclaimed"
    VOID = "void"


FINISHED = frozenset({GiveawayState.CLAIMED, GiveawayState.UNCLAIMED, GiveawayState.VOID})


class Eligibility(enum.StrEnum):
    """Who may enter: ``everyone`` in the room; ``watchers``, viewers the room first saw at
    least ``min_watch_min`` minutes ago; ``buyers``, viewers with a paid order of this room."""

    EVERYONE = "everyone"
    WATCHERS = "watchers"
    BUYERS = "buyers"


@dataclass(frozen=True)
class GiveawayTerms:
    sku_id: int
    duration_s: int
    eligibility: Eligibility = Eligibility.EVERYONE
    min_watch_min: int = 0
    # Entries from signed-in accounts only: a guest session is cheap to mint, so "one entry
    # each" holds per person only for accounts (decision 0041).
    accounts_only: bool = False


def check_terms(terms: GiveawayTerms) -> GiveawayTerms:
    if not MIN_DURATION_S <= terms.duration_s <= MAX_DURATION_S:
        raise Invalid(
            f"A giveaway runs {MIN_DURATION_S}-{MAX_DURATION_S} seconds.",
            code=LiveErrorCode.INVALID_GIVEAWAY,
            field="duration_s",
        )
    watching = terms.eligibility is Eligibility.WATCHERS
    if watching and not 1 <= terms.min_watch_min <= MAX_WATCH_MIN:
        raise Invalid(
            f"Watchers must have been in the room 1-{MAX_WATCH_MIN} minutes.",
            code=LiveErrorCode.INVALID_GIVEAWAY,
            field="min_watch_min",
        )
    if not watching and terms.min_watch_min:
        raise Invalid(
            "min_watch_min is for eligibility 'watchers' only.",
            code=LiveErrorCode.INVALID_GIVEAWAY,
            field="min_watch_min",
        )
    return terms


def new_seed() -> str:
    return secrets.token_hex(32)


def commitment(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def entries_hash(entries: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def draw(seed: str, entries: Iterable[str]) -> str:
    """The winner among ``entries`` (at least one) for ``seed``: see the module's docstring."""
    ordered = sorted(entries)
    digest = hashlib.sha256(f"{seed}:{entries_hash(ordered)}".encode()).hexdigest()
    return ordered[int(digest, 16) % len(ordered)]
