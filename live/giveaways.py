"""Giveaways in a live room (decision 0032): the creator puts one unit of a bag SKU up; viewers
enter with one tap (one entry each, in Redis); after the close the server draws the winner
verifiably (live/giveaway_rules.py) and holds the prize for them at price 0, claimed through the
one checkout like any hold. Every step is idempotent; any node's room sweep finishes it.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import exists, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service as catalog
from catalog.models import Deal, Seller
from checkout import deals
from checkout.error_codes import CheckoutErrorCode
from checkout.hold_states import HoldState
from checkout.holds import HoldStore
from checkout.models import Order
from kernel.db import Database
from kernel.errors import Conflict, DomainError, Forbidden, NotFound
from live import rules
from live.error_codes import LiveErrorCode
from live.giveaway_rules import (
    FINISHED,
    Eligibility,
    GiveawayState,
    GiveawayTerms,
    check_terms,
    commitment,
    draw,
    entries_hash,
    new_seed,
)
from live.keys import LiveKeys
from live.store import RoomStore

log = logging.getLogger(__name__)

LIBRARY = resources.files("live").joinpath("lua/giveaways.lua").read_text()
LOT_WINDOW_MS = 24 * 3600 * 1000


class Giveaways:
    def __init__(
        self,
        redis: Redis,
        keys: LiveKeys,
        store: RoomStore,
        holds: HoldStore,
        db: Database,
        *,
        hold_ttl_ms: int,
        pay_ttl_ms: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.holds = holds
        self.db = db
        self.hold_ttl_ms = hold_ttl_ms
        self.pay_ttl_ms = pay_ttl_ms

    async def install(self) -> None:
        await self.redis.function_load(LIBRARY, replace=True)

    def _keys(self, room_id: int, giveaway_id: int) -> list[str]:
        k = self.keys.room(room_id)
        return [
            k.meta,
            k.log,
            k.giveaway(giveaway_id),
            k.entrants(giveaway_id),
            k.seen,
            k.giveaways,
        ]

    async def _call(self, name: str, room_id: int, giveaway_id: int, *args: Any) -> Any:
        keys = self._keys(room_id, giveaway_id)
        k = self.keys.room(room_id)
        return await self.redis.fcall(
            name, len(keys), *keys, k.channel, self.store.log_maxlen, giveaway_id, *args
        )

    async def open(
        self, session: AsyncSession, seller: Seller, room_id: int, terms: GiveawayTerms
    ) -> dict[str, Any]:
        """Allocate the prize (a sealed lot of one, price 0), commit to a seed, announce."""
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
            0,
            starts_ms=now,
            ends_ms=now + LOT_WINDOW_MS,
            room_id=room_id,
        )
        lot = await deals.start(
            session, self.holds, lot, hold_ttl_ms=self.hold_ttl_ms, pay_ttl_ms=self.pay_ttl_ms
        )
        assert lot.id is not None
        seed = new_seed()
        watch_ms = terms.min_watch_min * 60_000 if terms.eligibility is Eligibility.WATCHERS else 0
        answer = await self._call(
            "lc_giveaway_open",
            room_id,
            lot.id,
            lot.id,
            terms.sku_id,
            commitment(seed),
            seed,
            terms.duration_s * 1000,
            watch_ms,
            int(terms.eligibility is Eligibility.BUYERS),
            int(terms.accounts_only),
        )
        if answer[0] not in ("ok", "exists"):
            await deals.stop(session, self.holds, lot)
            raise Conflict("The room is not live.", code=LiveErrorCode.ROOM_NOT_LIVE)
        await self.store.link_deal(lot.id, room_id)
        await self.store.track_formats(room_id)
        found = await self.view(room_id, lot.id)
        assert found is not None
        return found

    async def enter(self, room_id: int, giveaway_id: int, user: str, account: bool = False) -> int:
        """Enter once (a second entry changes nothing); returns the number of entries.
        ``account``: the entrant is signed in (an accounts-only giveaway refuses guests)."""
        found = await self.view(room_id, giveaway_id)
        if found is None:
            raise NotFound("No such giveaway.", code=LiveErrorCode.GIVEAWAY_NOT_FOUND)
        if await self.store.is_banned(room_id, user):
            raise Conflict("The creator banned you from this room.", code=LiveErrorCode.BANNED)
        if found["buyers_only"] and not await self._bought_here(room_id, user):
            raise Conflict(
                "This giveaway is for buyers of this live.",
                code=LiveErrorCode.NOT_ELIGIBLE,
                need="buyer",
            )
        raw = await self._call(
            "lc_giveaway_enter", room_id, giveaway_id, user, "1" if account else "0"
        )
        if raw[0] == "ok":
            return int(raw[1])
        if raw[0] == "account_required":
            raise Forbidden(
                "This giveaway is for signed-in accounts only: sign in.",
                code=CheckoutErrorCode.ACCOUNT_REQUIRED,
            )
        if raw[0] == "giveaway_closed":
            raise Conflict(
                "The giveaway has closed.",
                code=LiveErrorCode.GIVEAWAY_CLOSED,
                ends_ms=int(raw[1]),
            )
        if raw[0] == "not_eligible":
            raise Conflict(
                "Stay in the room a little longer to enter.",
                code=LiveErrorCode.NOT_ELIGIBLE,
                need="watch",
                wait_ms=int(raw[2]),
            )
        raise NotFound("No such giveaway.", code=LiveErrorCode.GIVEAWAY_NOT_FOUND)

    async def close(self, room_id: int, giveaway_id: int) -> None:
        """End the entries now (the creator's call); the draw follows within a tick."""
        raw = await self._call("lc_giveaway_close", room_id, giveaway_id)
        if raw[0] != "ok":
            raise NotFound("No such giveaway.", code=LiveErrorCode.GIVEAWAY_NOT_FOUND)
        await self.advance(room_id)

    async def close_all(self, room_id: int) -> None:
        """The room ended: every open giveaway's entries end now and it is drawn."""
        for giveaway_id in await self.active(room_id):
            await self._call("lc_giveaway_close", room_id, giveaway_id)
        await self.advance(room_id)

    async def _bought_here(self, room_id: int, user: str) -> bool:
        query = select(
            exists().where(
                col(Order.buyer_id) == user,
                col(Order.deal_id) == col(Deal.id),
                col(Deal.room_id) == room_id,
            )
        )
        async with self.db.session() as session:
            return bool((await session.exec(query)).one()[0])  # type: ignore[call-overload]

    async def view(self, room_id: int, giveaway_id: int, user: str = "") -> dict[str, Any] | None:
        raw = await self.redis.fcall(
            "lc_giveaway_read", 6, *self._keys(room_id, giveaway_id), "", 0, giveaway_id
        )
        if not raw:
            return None
        found: dict[str, Any] = orjson.loads(raw[0])
        if user and found.get("winner") == user and raw[1]:
            found["your_hold"] = {"id": raw[1], "pay_by_ms": int(raw[2])}
        return found

    async def entries(self, room_id: int, giveaway_id: int) -> list[str]:
        """The entrants in the order the draw uses (sorted): published once drawn."""
        members = await self.redis.smembers(self._keys(room_id, giveaway_id)[3])
        return sorted(str(m) for m in members)

    async def active(self, room_id: int) -> list[int]:
        members = await self.redis.smembers(self._keys(room_id, 0)[5])
        return sorted(int(m) for m in members)

    async def advance(self, room_id: int) -> bool:
        """Draw each giveaway once due and follow its winner's hold (claimed or lapsed). Whether
        the room had any unfinished (the room's tick then keeps its 100 ms pace for it)."""
        active = await self.active(room_id)
        for giveaway_id in active:
            try:
                await self._advance_one(room_id, giveaway_id)
            except DomainError:
                log.exception("giveaway %s of room %s could not advance", giveaway_id, room_id)
        return bool(active)

    async def _advance_one(self, room_id: int, giveaway_id: int) -> None:
        answer = await self._call("lc_giveaway_due", room_id, giveaway_id)
        if answer[0] == "due":
            entries = await self.entries(room_id, giveaway_id)
            winner = draw(answer[1], entries)
            hold = await self.holds.award(
                giveaway_id, winner, 0, f"giveaway-{giveaway_id}", self.hold_ttl_ms
            )
            if hold is None:
                return
            await self._call(
                "lc_giveaway_drawn",
                room_id,
                giveaway_id,
                entries_hash(entries),
                winner,
                hold.id,
                hold.expires_ms,
            )
            await self.store.send_to_user(
                room_id,
                winner,
                {"type": "giveaway.won", "giveaway_id": giveaway_id, "hold": hold.json()},
            )
        elif answer[0] in FINISHED:
            # Stop the lot (an unclaimed or void prize's unit settles back), then forget the
            # giveaway: in this order, a crash between the two is finished by the next pass.
            await self.holds.stop_deal(giveaway_id)
            await self._call("lc_giveaway_forget", room_id, giveaway_id)
        elif answer[0] == GiveawayState.DRAWN:
            found = await self.view(room_id, giveaway_id)
            if found is None:
                return
            winner = found["winner"]
            held = await self.view(room_id, giveaway_id, winner)
            if held is None or "your_hold" not in held:
                return
            prize = await self.holds.get_hold(held["your_hold"]["id"], winner)
            if prize.state == HoldState.SOLD:
                await self._call("lc_giveaway_finish", room_id, giveaway_id, GiveawayState.CLAIMED)
            elif prize.state in (HoldState.EXPIRED, HoldState.RELEASED):
                await self._call(
                    "lc_giveaway_finish", room_id, giveaway_id, GiveawayState.UNCLAIMED
                )
