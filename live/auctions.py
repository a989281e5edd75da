"""Auctions in a live room (decision 0031): opening one on a lot, bids, and the steps after the
close (award the lot as a hold, mark it sold, or offer it to the next bidder). Every step is a
function of ``lua/auctions.lua`` in the room's slot, or of the lot's deal library in the deal's
slot; each is idempotent, so any node's room sweep finishes what a crash left half done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service as catalog
from catalog.models import Seller
from checkout import deals
from checkout.checkout import Till, pay_with_card_on_file
from checkout.error_codes import CheckoutErrorCode
from checkout.faults import NO_CRASH, CrashPoints
from checkout.hold_states import HoldState
from checkout.holds import HoldStore
from kernel.errors import Conflict, DomainError, ErrorCode, Forbidden, NotFound
from live import rules
from live.auction_rules import FINISHED, AuctionState, AuctionTerms, check_terms, steps_text
from live.error_codes import LiveErrorCode
from live.keys import LiveKeys
from live.store import RoomStore

log = logging.getLogger(__name__)

LIBRARY = resources.files("live").joinpath("lua/auctions.lua").read_text()
# The lot's deal window outlasts any auction (at most an hour, plus extensions) and its pay
# windows; the auction stops the lot when it is sold or unsold, long before.
LOT_WINDOW_MS = 24 * 3600 * 1000

_REFUSALS: dict[str, tuple[type[DomainError], ErrorCode, str]] = {
    "auction_not_found": (NotFound, LiveErrorCode.AUCTION_NOT_FOUND, "No such auction."),
    "auction_closed": (Conflict, LiveErrorCode.AUCTION_CLOSED, "The auction has closed."),
    "room_not_found": (NotFound, LiveErrorCode.ROOM_NOT_FOUND, "No such room."),
    "room_not_live": (Conflict, LiveErrorCode.ROOM_NOT_LIVE, "The room is not live."),
    "shill_bid": (Conflict, LiveErrorCode.SHILL_BID, "A shop cannot bid on its own auction."),
    "payment_method_required": (
        Conflict,
        LiveErrorCode.PAYMENT_METHOD_REQUIRED,
        "Keep a card on file to bid (PUT /api/payment-method): it is charged if you win.",
    ),
    "muted": (Conflict, LiveErrorCode.MUTED, "The creator has muted you in this room."),
    "banned": (Conflict, LiveErrorCode.BANNED, "The creator banned you from this room."),
    "unpaid_win": (
        Conflict,
        LiveErrorCode.UNPAID_WIN,
        "This lot was offered to you already: it went on when its hold lapsed unpaid.",
    ),
    "not_sold_out": (
        Conflict,
        CheckoutErrorCode.NOT_SOLD_OUT,
        "The auction is still open: bid instead.",
    ),
    "no_buy_now": (Conflict, LiveErrorCode.NO_BUY_NOW, "This auction has no buy-it-now price."),
    "account_required": (
        Forbidden,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        "This auction takes bids from signed-in accounts only: sign in.",
    ),
    "buy_now_gone": (
        Conflict,
        LiveErrorCode.BUY_NOW_GONE,
        "Buy-it-now went away with the first bid.",
    ),
}


@dataclass(frozen=True)
class Bid:
    """A bid as the auction took it: ``outcome`` is leading, raised (the leader raised their
    maximum), outbid (another bidder's maximum beats it: the price rose all the same) or
    bought (buy-it-now closed the auction)."""

    auction_id: int
    outcome: str
    price: int
    ends_ms: int
    seq: int
    min_bid: int

    def json(self) -> dict[str, Any]:
        return {
            "auction_id": self.auction_id,
            "outcome": self.outcome,
            "price": self.price,
            "ends_ms": self.ends_ms,
            "seq": self.seq,
            "min_bid": self.min_bid,
        }


def _refusal(word: str, data: list[str]) -> DomainError:
    if word == "bid_too_low":
        return Conflict(
            "Bid at least the minimum.", code=LiveErrorCode.BID_TOO_LOW, min_bid=int(data[0])
        )
    if word == "bid_not_higher":
        return Conflict(
            "You lead already: a new maximum must be above your last.",
            code=LiveErrorCode.BID_NOT_HIGHER,
            your_max=int(data[0]),
        )
    cls, code, message = _REFUSALS[word]
    if word == "auction_closed":
        return cls(message, code=code, ends_ms=int(data[0]))
    return cls(message, code=code)


class Auctions:
    """The room side of auctions (Redis), and the lot's side through the hold store."""

    def __init__(
        self,
        redis: Redis,
        keys: LiveKeys,
        store: RoomStore,
        holds: HoldStore,
        *,
        hold_ttl_ms: int,
        pay_ttl_ms: int,
        till: Till | None = None,
        crash: CrashPoints = NO_CRASH,
    ) -> None:
        """``hold_ttl_ms``: how long a winner has to pay (the award hold's life, as a deal
        hold's); ``pay_ttl_ms``: how long a payment under way keeps it. ``till``: to charge a
        winner's card on file (None: no cards are asked for, nobody is charged on file)."""
        self.redis = redis
        self.keys = keys
        self.store = store
        self.holds = holds
        self.hold_ttl_ms = hold_ttl_ms
        self.pay_ttl_ms = pay_ttl_ms
        self.till = till
        self.crash = crash

    async def install(self) -> None:
        await self.redis.function_load(LIBRARY, replace=True)

    def _keys(self, room_id: int, auction_id: int) -> list[str]:
        k = self.keys.room(room_id)
        return [
            k.meta,
            k.log,
            k.muted,
            k.auction(auction_id),
            k.bidders(auction_id),
            k.auctions,
            k.waiters(auction_id),
            k.waiter_names(auction_id),
        ]

    async def _call(self, name: str, room_id: int, auction_id: int, *args: Any) -> Any:
        keys = self._keys(room_id, auction_id)
        k = self.keys.room(room_id)
        return await self.redis.fcall(
            name, len(keys), *keys, k.channel, self.store.log_maxlen, auction_id, *args
        )

    # -- the creator ---------------------------------------------------------------------------

    async def open(
        self,
        session: AsyncSession,
        seller: Seller,
        room_id: int,
        terms: AuctionTerms,
    ) -> dict[str, Any]:
        """Put one unit of the SKU up for auction in the room: the lot is allocated and sealed
        (a deal of one nobody may reserve), then the auction opens on Redis's clock."""
        check_terms(terms)
        snap = await self.store.read(room_id)
        if snap is None:
            raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
        rules.require_live(snap.room)
        rules.sku_in_bag(snap.room, terms.sku_id)
        now = await self.store.server_ms()
        lot = await catalog.create_lot(
            session,
            seller,
            terms.sku_id,
            terms.start_price,
            starts_ms=now,
            ends_ms=now + LOT_WINDOW_MS,
            room_id=room_id,
        )
        lot = await deals.start(
            session, self.holds, lot, hold_ttl_ms=self.hold_ttl_ms, pay_ttl_ms=self.pay_ttl_ms
        )
        assert lot.id is not None
        try:
            await self.start(room_id, lot.id, seller_user(seller), terms)
        except DomainError:
            await deals.stop(session, self.holds, lot)  # the room ended meanwhile: unit back
            raise
        await self.store.link_deal(lot.id, room_id)
        found = await self.view(room_id, lot.id)
        assert found is not None
        return found

    async def start(self, room_id: int, lot_id: int, seller: str, terms: AuctionTerms) -> None:
        """Open the auction of lot ``lot_id`` in the room (Redis's side alone; opening twice is
        harmless) and announce it: ``auction.started``."""
        answer = await self._call(
            "lc_auction_open",
            room_id,
            lot_id,
            *_flat(
                deal=lot_id,
                sku=terms.sku_id,
                seller=seller,
                start=terms.start_price,
                steps=steps_text(terms.increments),
                reserve=terms.reserve_price,
                buy_now=terms.buy_now_price,
                mode=terms.mode.value,
                snipe=terms.snipe_s * 1000,
                second=int(terms.second_chance),
                card=int(terms.card_required),
                accounts=int(terms.accounts_only),
                duration=terms.duration_s * 1000,
                relists=terms.relists,
            ),
        )
        if answer[0] not in ("ok", "exists"):
            raise _refusal(answer[0], answer[1:])
        await self.store.track_formats(room_id)

    # -- viewers -------------------------------------------------------------------------------

    async def bid(
        self,
        room_id: int,
        auction_id: int,
        user: str,
        name: str,
        amount: int,
        buy_now: bool,
        account: bool = False,
    ) -> Bid:
        """A bid of at most ``amount`` (or buy-it-now); ``account``: the bidder is signed in (an
        accounts-only auction refuses guests). Refusals change nothing."""
        has_card = self.till is None or await self.till.provider.method_of(user) is not None
        raw = await self._call(
            "lc_auction_bid",
            room_id,
            auction_id,
            user,
            amount,
            name,
            "1" if buy_now else "0",
            "1" if has_card else "0",
            "1" if account else "0",
        )
        if raw[0] != "ok":
            raise await self._refused(room_id, user, raw)
        outcome, price, ends, seq, outbid, min_bid = raw[1:7]
        if outbid:
            await self.store.send_to_user(
                room_id,
                outbid,
                {"type": "auction.outbid", "auction_id": auction_id, "price": int(price)},
            )
        return Bid(auction_id, outcome, int(price), int(ends), int(seq), int(min_bid))

    async def wait(
        self, room_id: int, auction_id: int, user: str, name: str, account: bool = False
    ) -> dict[str, int]:
        """Join the lot's waitlist once the auction closed with a winner: offered in order at
        the hammer price if nobody before pays. Joining again keeps the place."""
        has_card = self.till is None or await self.till.provider.method_of(user) is not None
        raw = await self._call(
            "lc_auction_wait",
            room_id,
            auction_id,
            user,
            name,
            "1" if has_card else "0",
            "1" if account else "0",
        )
        if raw[0] != "ok":
            raise await self._refused(room_id, user, raw)
        return {"place": int(raw[1]), "waiting": int(raw[2])}

    async def _refused(self, room_id: int, user: str, raw: list[Any]) -> DomainError:
        # A ban mutes too, and the function refuses the mute: say which it is.
        if raw[0] == "muted" and await self.store.is_banned(room_id, user):
            return _refusal("banned", [])
        return _refusal(raw[0], raw[1:])

    async def unwait(self, room_id: int, auction_id: int, user: str) -> bool:
        """Leave the lot's waitlist: whether they were on it."""
        return bool(await self._call("lc_auction_unwait", room_id, auction_id, user))

    async def _read(self, room_id: int, auction_id: int, user: str = "") -> list[Any] | None:
        keys = self._keys(room_id, auction_id)
        found = await self.redis.fcall("lc_auction_read", len(keys), *keys, "", 0, auction_id, user)
        return list(found) if found else None

    async def view(self, room_id: int, auction_id: int, user: str = "") -> dict[str, Any] | None:
        """The auction as anyone may see it, with how many wait for the lot; the winner also
        sees their hold, and a user on the lot's waitlist their place."""
        raw = await self._read(room_id, auction_id, user)
        if not raw:
            return None
        found: dict[str, Any] = orjson.loads(raw[0])
        found["waiting"] = int(raw[6])
        if user and found.get("winner") == user and raw[1]:
            found["your_hold"] = {"id": raw[1], "pay_by_ms": int(raw[2])}
        if user and int(raw[5]):
            found["place"] = int(raw[5])
        return found

    async def close_all(self, room_id: int) -> None:
        """The room ended: every open auction closes now (its leader wins, as at a normal
        close) and moves on as far as it can."""
        for auction_id in await self.active(room_id):
            await self._call("lc_auction_close_now", room_id, auction_id)
        await self.advance(room_id)

    async def active(self, room_id: int) -> list[int]:
        members = await self.redis.smembers(self._keys(room_id, 0)[5])
        return sorted(int(m) for m in members)

    # -- after the close -----------------------------------------------------------------------

    async def advance(self, room_id: int) -> bool:
        """Move each unfinished auction of the room one step along: close it once due, award
        the lot to the round's winner, and follow the winner's hold (paid: sold; lapsed or
        released: the next bidder, or unsold). Any node may run it at any time. Whether the
        room had any unfinished (the room's tick then keeps its 100 ms pace for it)."""
        active = await self.active(room_id)
        for auction_id in active:
            try:
                await self._advance_one(room_id, auction_id)
            except DomainError:
                log.exception("auction %s of room %s could not advance", auction_id, room_id)
        return bool(active)

    async def _advance_one(self, room_id: int, auction_id: int) -> None:
        answer = await self._call("lc_auction_close", room_id, auction_id)
        if answer[0] in ("auction_not_due", "auction_not_found"):
            return
        state, winner, price, round_ = answer
        if state == AuctionState.CLOSED:
            await self._award(room_id, auction_id, winner, int(price), int(round_))
        elif state == AuctionState.AWARDED:
            await self._follow(room_id, auction_id, winner, int(round_))
        elif state in FINISHED:
            # Stop the lot (its unsold unit settles back to the SKU), then forget the auction:
            # in this order, a crash between the two is finished by the next pass.
            await self.holds.stop_deal(auction_id)
            await self._call("lc_auction_forget", room_id, auction_id)

    async def _award(
        self, room_id: int, auction_id: int, winner: str, price: int, round_: int
    ) -> None:
        hold = await self.holds.award(
            auction_id, winner, price, f"auction-{auction_id}-{round_}", self.hold_ttl_ms
        )
        if hold is None:
            return  # an earlier round's hold is still being paid: wait for it
        self.crash.reach("auction.after_award")
        answer = await self._call(
            "lc_auction_awarded", room_id, auction_id, round_, hold.id, hold.expires_ms
        )
        if answer[0] == AuctionState.AWARDED:
            await self.store.send_to_user(
                room_id,
                winner,
                {
                    "type": "auction.won",
                    "auction_id": auction_id,
                    "price": price,
                    "hold": hold.json(),
                },
            )

    async def _follow(self, room_id: int, auction_id: int, winner: str, round_: int) -> None:
        raw = await self._read(room_id, auction_id)
        if not raw or not raw[1]:
            return
        hold_id, autopaid = raw[1], int(raw[4])
        hold = await self.holds.get_hold(hold_id, winner)
        if hold.state == HoldState.HELD and self.till is not None and autopaid < round_:
            await self._charge_on_file(room_id, auction_id, hold_id, winner, round_)
        elif hold.state == HoldState.SOLD:
            await self._call("lc_auction_sold", room_id, auction_id, round_)
        elif hold.state in (HoldState.EXPIRED, HoldState.RELEASED):
            await self._call("lc_auction_next", room_id, auction_id, round_)
        # A sold or unsold auction's lot is stopped and the auction forgotten on the next pass.

    async def _charge_on_file(
        self, room_id: int, auction_id: int, hold_id: str, winner: str, round_: int
    ) -> None:
        """The winner's card on file pays the win at once, once per round: a decline leaves
        the hold to be paid by hand until it lapses (then the next bidder is offered it). The
        round is marked charged only after the attempt, so a crash before it tries again
        under the same key, which never charges twice."""
        assert self.till is not None
        try:
            paid = await pay_with_card_on_file(
                self.till,
                hold_id=hold_id,
                buyer=winner,
                attempt_key=f"auction-{auction_id}-{round_}",
            )
        except DomainError as refused:
            log.info("auction %s: the winner's card on file was refused: %s", auction_id, refused)
            paid = None
            # The winner pays by hand before the hold lapses (or the next bidder is offered it).
            await self.store.send_to_user(
                room_id,
                winner,
                {
                    "type": "auction.charge_failed",
                    "auction_id": auction_id,
                    "code": refused.code,
                    "hold": (await self.holds.get_hold(hold_id, winner)).json(),
                },
            )
        await self._call("lc_auction_autopaid", room_id, auction_id, round_)
        if paid is not None:
            await self.store.send_to_user(
                room_id,
                winner,
                {
                    "type": "auction.paid",
                    "auction_id": auction_id,
                    "hold_id": hold_id,
                    "amount": paid.amount,
                    "payment_ref": paid.payment_ref,
                },
            )


def seller_user(seller: Seller) -> str:
    """The seller's user id in their rooms (as the gateway names a creator's connection)."""
    return f"seller-{seller.id}"


def _flat(**fields: object) -> list[str]:
    return [str(part) for pair in fields.items() for part in pair]
