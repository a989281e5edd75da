"""Each state machine's words are written once, in the module that defines its enum: a deal's
status and phase, a hold's state, a room's and its flash deals' status (decision 0022). Every
other module names a member, so a typo is an AttributeError and a new state is found by its
references. The Lua scripts keep their own copies of the words: they must be the enums' values.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Awaitable, Iterator
from enum import StrEnum

import pytest

from catalog import deal_status, service
from catalog.deal_status import DealStatus, refused, sources
from catalog.rules import DealTerms
from checkout import hold_states
from checkout.deal_phase import DealPhase, phase_at, phase_unloaded
from checkout.hold_states import HoldRecord, HoldState
from kernel.db import Database
from kernel.errors import Conflict
from live import room_states, rules
from live.auction_rules import AuctionState
from live.giveaway_rules import GiveawayState
from live.room_states import FlashDealStatus, RoomStatus
from tests.conftest import SellerAccount
from tests.helpers import make_sku
from tests.source import ROOT, name_of, production_files

ENUMS: tuple[type[StrEnum], ...] = (
    DealStatus,
    DealPhase,
    HoldState,
    RoomStatus,
    FlashDealStatus,
    AuctionState,
    GiveawayState,
)
VOCABULARY = frozenset(member.value for enum in ENUMS for member in enum)
DEFINING = frozenset(
    {"catalog/deal_status.py", "checkout/deal_phase.py", "checkout/hold_states.py"}
    | {"live/room_states.py", "live/auction_rules.py", "live/giveaway_rules.py"}
)
# The same word meaning something else, with what it means there.
OTHER_MEANINGS = {
    ("live/media/relay.py", "live"): "aiortc's MediaStreamTrack.readyState",
    ("live/store.py", "live"): "the package rooms.lua is loaded from",
    ("live/auctions.py", "live"): "the package auctions.lua is loaded from",
    ("live/giveaways.py", "live"): "the package giveaways.lua is loaded from",
    ("checkout/return_states.py", "closed"): "a return's own state (ReturnStatus)",
    ("checkout/return_states.py", "offered"): "a return's own state (ReturnStatus)",
    ("checkout/attempts.py", "void"): "a payment attempt's own state (AttemptStatus)",
    ("live/media/broadcasts.py", "closed"): "aiortc's RTCPeerConnection.connectionState",
    ("live/media/publisher.py", "closed"): "aiortc's RTCPeerConnection.connectionState",
}


def bare_words(source: str) -> Iterator[tuple[int, str]]:
    """(line, word) for each string literal that is a state word. Dict keys and subscripts are
    left out: those name JSON fields and Redis hash fields ("held" units, "sold_out" flag)."""
    tree = ast.parse(source)
    field_names: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            field_names.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            field_names.add(id(node.slice))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and node.value in VOCABULARY
            and id(node) not in field_names
        ):
            yield node.lineno, node.value


def bare_words_in_packages() -> list[str]:
    found = []
    for path in production_files():
        name = name_of(path)
        if name in DEFINING or path.name == "error_codes.py":  # error codes: another set
            continue
        for line, word in bare_words(path.read_text()):
            if (name, word) not in OTHER_MEANINGS:
                found.append(f"{name}:{line}: {word!r}")
    return found


def test_no_state_word_outside_its_enum() -> None:
    assert bare_words_in_packages() == []


def test_the_scan_sees_a_bare_word_and_leaves_field_names() -> None:
    source = (
        'if deal["status"] == "live" and hold.state in ("held", "paying"):\n'
        '    room = {"sold_out": False, "held": 3}\n'
    )
    assert list(bare_words(source)) == [(1, "live"), (1, "held"), (1, "paying")]


# -- the Lua scripts -------------------------------------------------------------------------


def moves_of(table: dict[StrEnum, frozenset[StrEnum]]) -> set[tuple[str, str]]:
    return {(a.value, b.value) for a, targets in table.items() for b in targets}


def lua(path: str) -> str:
    return (ROOT / path).read_text()


def states_in(script: str) -> set[str]:
    compared = re.findall(r"state\s*(?:==|~=|=)\s*'(\w+)'", script)
    closed = re.findall(r"close_hold\([^)]*'(\w+)'\)", script)
    return set(compared) | set(closed)


def test_holds_lua_writes_and_reads_only_hold_states() -> None:
    deal_states = {s.value for s in HoldState if s not in hold_states.SHELF_ONLY}
    assert states_in(lua("checkout/lua/holds.lua")) == deal_states


def test_shelf_lua_writes_and_reads_only_hold_states() -> None:
    assert states_in(lua("checkout/lua/shelf.lua")) == {s.value for s in HoldState}


def test_holds_lua_header_draws_the_moves_of_the_table() -> None:
    header = re.search(r"Hold states: (.*?)\(", lua("checkout/lua/holds.lua"), re.S)
    assert header is not None
    drawn: set[tuple[str, str]] = set()
    for chain in header.group(1).replace("\n", " ").split(";"):
        steps = [step.strip().split("|") for step in chain.split("->")]
        for before, after in itertools.pairwise(steps):
            drawn |= {(a, b) for a in before for b in after}
    deal_moves = {m for m in moves_of(hold_states.TRANSITIONS) if m[0] != HoldState.OFFERED}
    assert drawn == deal_moves


def test_rooms_lua_reads_only_room_states() -> None:
    words = re.findall(r"status\s*(?:==|~=)\s*'(\w+)'", lua("live/lua/rooms.lua"))
    assert words and set(words) <= {s.value for s in RoomStatus}


# -- the tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        deal_status.TRANSITIONS,
        hold_states.TRANSITIONS,
        room_states.ROOM_TRANSITIONS,
        room_states.FLASH_DEAL_TRANSITIONS,
    ],
)
def test_every_state_has_its_moves(table: dict[StrEnum, frozenset[StrEnum]]) -> None:
    kind = type(next(iter(table)))
    assert set(table) == set(kind)
    assert all(type(t) is kind for targets in table.values() for t in targets)


def test_deal_moves_and_their_refusals() -> None:
    assert sources(DealStatus.LIVE) == (DealStatus.SCHEDULED,)
    assert sources(DealStatus.ENDED) == (DealStatus.LIVE,)
    assert sources(DealStatus.SETTLED) == (DealStatus.LIVE, DealStatus.ENDED)
    assert refused(7, DealStatus.LIVE).code == "deal_not_scheduled"
    assert refused(7, DealStatus.ENDED).code == "deal_not_live"
    assert refused(7, DealStatus.ENDED, "The deal was never started.").details == {"deal_id": 7}


@pytest.mark.storage
async def test_each_deal_move_is_one_guarded_update(db: Database, seller: SellerAccount) -> None:
    sku = await make_sku(db, seller, stock=10)
    terms = DealTerms(deal_price=100, quantity=4, per_buyer_limit=1, starts_ms=0, ends_ms=60_000)

    async def refusal(move: Awaitable[object]) -> str:
        with pytest.raises(Conflict) as err:
            await move
        await session.refresh(deal)  # a refused move ends its transaction
        return err.value.code

    async with db.session() as session:
        deal = await service.create_deal(session, seller.seller, sku.id or 0, terms)
        assert deal.status == DealStatus.SCHEDULED
        assert await refusal(service.end_deal(session, deal)) == "deal_not_live"
        assert not await service.settle_deal(session, deal, 0)
        await session.refresh(deal)
        deal = await service.start_deal(session, deal)
        assert deal.status == DealStatus.LIVE
        assert await refusal(service.start_deal(session, deal)) == "deal_not_scheduled"
        deal = await service.end_deal(session, deal)
        assert deal.status == DealStatus.ENDED
        assert await refusal(service.end_deal(session, deal)) == "deal_not_live"
        assert await service.settle_deal(session, deal, 1)
        assert not await service.settle_deal(session, deal, 1)  # settled once
        await session.refresh(deal)
        assert deal.status == DealStatus.SETTLED
        assert (await service.get_sku(session, sku.id or 0)).allocated == 1  # the one sold


def test_hold_record_is_read_field_by_field() -> None:
    record = HoldRecord.parse("paying|2|1700000060000|1700000030000|att-1|buyer9|req|x")
    assert record == HoldRecord(
        HoldState.PAYING, 2, 1_700_000_060_000, 1_700_000_030_000, "att-1", "buyer9", "req|x"
    )
    assert record.state.open and not HoldState.SOLD.open
    # An offered shelf hold keeps its unit out of stock until it lapses or is taken.
    assert {s for s in HoldState if s.open} == {HoldState.HELD, HoldState.PAYING, HoldState.OFFERED}


def test_phase_on_redis_clock_and_without_stock() -> None:
    def at(now: int, *, stopped: bool = False, available: int = 1) -> DealPhase:
        return phase_at(now, starts_ms=10, ends_ms=20, stopped=stopped, available=available)

    assert [at(9), at(10), at(10, available=0), at(20)] == [
        DealPhase.UPCOMING,
        DealPhase.OPEN,
        DealPhase.SOLD_OUT,
        DealPhase.ENDED,
    ]
    assert at(15, stopped=True) is DealPhase.ENDED
    assert phase_unloaded(DealStatus.SCHEDULED) is DealPhase.UPCOMING
    assert {phase_unloaded(s) for s in DealStatus if s is not DealStatus.SCHEDULED} == {
        DealPhase.ENDED
    }


def test_room_rules_move_only_along_the_tables() -> None:
    """Drive rooms through every rule that changes a status: each change is one of its table's
    moves, and each move of the tables is made by some rule."""
    now = 1_000_000
    product = {
        "product_id": 7,
        "title": "Jacket",
        "image": None,
        "skus": [{"sku_id": 70, "variant": "M", "list_price": 9900, "currency": "USD"}],
    }
    deal = {"deal_id": 5, "sku_id": 70, "starts_ms": now + 10, "ends_ms": now + 20}
    steps = [
        lambda r: rules.go_live(r, now),
        lambda r: rules.add_to_bag(r, product, now),
        *(lambda r, i=i: rules.schedule_deal(r, {**deal, "deal_id": i}, now) for i in (5, 6, 7)),
        lambda r: rules.stop_deal(r, 6, now),
        lambda r: rules.tick(r, now + 10),
        lambda r: rules.stop_deal(r, 7, now + 11),
        lambda r: rules.tick(r, now + 20),
        lambda r: rules.end(r, now + 30),
    ]
    room_moves: set[tuple[str, str]] = set()
    deal_moves: set[tuple[str, str]] = set()
    for room, path in (
        (rules.new_room(1, 2, 3, "Sale", now), steps),
        (rules.new_room(2, 2, 3, "Off", now), steps[-1:]),
    ):
        for step in path:
            after = step(room).room
            room_moves.add((room["status"], after["status"]))
            before = {d["deal_id"]: d["status"] for d in room["deals"]}
            deal_moves |= {
                (before[d["deal_id"]], d["status"])
                for d in after["deals"]
                if d["deal_id"] in before
            }
            room = after
    assert {(a, b) for a, b in room_moves if a != b} == moves_of(room_states.ROOM_TRANSITIONS)
    assert {(a, b) for a, b in deal_moves if a != b} == moves_of(room_states.FLASH_DEAL_TRANSITIONS)
