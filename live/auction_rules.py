"""An auction's terms and the increment table, checked before anything is stored. Pure: no I/O.
The bidding itself (proxy bids, anti-snipe, the close) happens in ``lua/auctions.lua`` on
Redis's clock (decision 0031); this module decides only what an auction may be opened with."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from kernel.errors import Invalid
from live.error_codes import LiveErrorCode

# The increment by price band, in minor units: from this price up, a bid must beat the price
# by this much (the bands the big auction sites publish, in cents).
DEFAULT_INCREMENTS: tuple[tuple[int, int], ...] = (
    (0, 5),
    (100, 25),
    (500, 50),
    (2_500, 100),
    (10_000, 250),
    (25_000, 500),
    (50_000, 1_000),
    (100_000, 2_500),
    (250_000, 5_000),
    (500_000, 10_000),
)
MIN_DURATION_S, MAX_DURATION_S = 10, 3600
MIN_SNIPE_S, MAX_SNIPE_S = 5, 120
MAX_RELISTS = 3  # with an hour each at most, a lot's deal window (24 h) outlasts them all
MAX_BANDS = 20


class AuctionMode(enum.StrEnum):
    """``standard``: a bid in the last ``snipe_s`` seconds moves the close to ``snipe_s`` from
    that bid (anti-snipe). ``sudden_death``: the close never moves."""

    STANDARD = "standard"
    SUDDEN_DEATH = "sudden_death"


class AuctionState(enum.StrEnum):
    """As ``lua/auctions.lua`` moves it: open -> closed (the winner is fixed, the award due)
    -> awarded (the winner holds the lot) -> sold; awarded -> closed again (the next bidder is
    offered the lot); and to unsold (no bids, reserve not met, nobody paid)."""

    OPEN = "open"
    CLOSED = "closed"
    AWARDED = "awarded"
    SOLD = "sold"
    UNSOLD = "unsold"


FINISHED = frozenset({AuctionState.SOLD, AuctionState.UNSOLD})


@dataclass(frozen=True)
class AuctionTerms:
    sku_id: int
    start_price: int
    duration_s: int
    mode: AuctionMode = AuctionMode.STANDARD
    snipe_s: int = 15
    reserve_price: int = 0  # 0: none
    buy_now_price: int = 0  # 0: none
    increments: tuple[tuple[int, int], ...] = DEFAULT_INCREMENTS
    second_chance: bool = True  # an unpaid win goes to the next bidder
    # Bidders need a card on file, charged when they win (so a winner cannot walk away free).
    card_required: bool = True
    # Bids from signed-in accounts only (a guest session is cheap to mint; decision 0041).
    accounts_only: bool = False
    # Times the lot goes up again at once when a close brings no sale (no bid, the reserve not
    # met, nobody paid), while the room is live.
    relists: int = 0


def _bad(field: str, message: str) -> Invalid:
    return Invalid(message, code=LiveErrorCode.INVALID_AUCTION, field=field)


def check_increments(bands: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """A table of (from price, increment) bands: the first from 0, rising, every increment
    at least 1."""
    if not bands or len(bands) > MAX_BANDS:
        raise _bad("increments", f"Give 1 to {MAX_BANDS} bands of [from price, increment].")
    table = tuple((int(band[0]), int(band[1])) for band in bands)
    if table[0][0] != 0:
        raise _bad("increments", "The first band starts at price 0.")
    if any(later[0] <= earlier[0] for earlier, later in itertools.pairwise(table)):
        raise _bad("increments", "Bands must start at rising prices.")
    if any(step < 1 for _, step in table):
        raise _bad("increments", "Every increment is at least 1.")
    return table


def check_terms(terms: AuctionTerms) -> AuctionTerms:
    """The terms if an auction may open with them, else ``invalid_auction`` naming the field."""
    if terms.start_price < 1:
        raise _bad("start_price", "The starting bid is at least 1.")
    if not MIN_DURATION_S <= terms.duration_s <= MAX_DURATION_S:
        raise _bad("duration_s", f"An auction runs {MIN_DURATION_S}-{MAX_DURATION_S} seconds.")
    if terms.mode is AuctionMode.STANDARD and not MIN_SNIPE_S <= terms.snipe_s <= MAX_SNIPE_S:
        raise _bad("snipe_s", f"The anti-snipe window is {MIN_SNIPE_S}-{MAX_SNIPE_S} seconds.")
    if terms.reserve_price and terms.reserve_price < terms.start_price:
        raise _bad("reserve_price", "A reserve price is at least the starting bid.")
    if terms.buy_now_price and terms.buy_now_price <= max(terms.start_price, terms.reserve_price):
        raise _bad("buy_now_price", "Buy-it-now is above the starting bid and the reserve.")
    if not 0 <= terms.relists <= MAX_RELISTS:
        raise _bad("relists", f"An auction relists 0-{MAX_RELISTS} times.")
    check_increments(terms.increments)
    return terms


def increment_at(table: Sequence[tuple[int, int]], price: int) -> int:
    """The increment a bid must beat ``price`` by (as lua/auctions.lua's step_at)."""
    step = 1
    for start, band_step in table:
        if price >= start:
            step = band_step
    return step


def steps_text(table: Sequence[tuple[int, int]]) -> str:
    """The table as the auction hash keeps it: "from:step,from:step"."""
    return ",".join(f"{start}:{step}" for start, step in table)
