"""Creator actions on a room, across SQL (the room's record, products, deals) and Redis (the
room's live state and events). Ownership is checked here; the rules are in live/rules.py."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import affiliates
from catalog import service as catalog
from catalog.deal_status import DealStatus
from catalog.error_codes import CatalogErrorCode
from catalog.models import Deal, Product, Seller, Sku
from catalog.rules import DealTerms
from checkout import deals
from checkout.holds import HoldStore
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import Conflict, DomainError, NotFound
from live import rules
from live.auctions import Auctions
from live.error_codes import LiveErrorCode
from live.giveaways import Giveaways
from live.models import LiveRoom
from live.room_states import RUNNING, FlashDealStatus, RoomStatus
from live.store import Committed, RoomStore

log = logging.getLogger("livecart.rooms")


async def create_room(
    session: AsyncSession, store: RoomStore, seller: Seller, shop_id: int, title: str
) -> rules.Room:
    await catalog.owned_shop(session, seller, shop_id)
    assert seller.id is not None
    now = now_ms()
    row = LiveRoom(
        shop_id=shop_id, seller_id=seller.id, title=rules.clean_title(title), created_ms=now
    )
    session.add(row)
    await session.commit()
    assert row.id is not None
    room = rules.new_room(row.id, shop_id, seller.id, row.title, now)
    await store.create(room)
    return room


async def owned_room(session: AsyncSession, seller: Seller, room_id: int) -> LiveRoom:
    row = await session.get(LiveRoom, room_id)
    if row is None or row.seller_id != seller.id:
        raise NotFound(
            "No such room among yours.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id
        )
    return row


async def list_rooms(
    session: AsyncSession,
    status: RoomStatus | None = None,
    *,
    seller_id: int | None = None,
    shop_id: int | None = None,
) -> Sequence[LiveRoom]:
    query = select(LiveRoom).order_by(col(LiveRoom.id).desc()).limit(200)
    if status is not None:
        query = query.where(LiveRoom.status == status)
    if seller_id is not None:
        query = query.where(LiveRoom.seller_id == seller_id)
    if shop_id is not None:
        query = query.where(LiveRoom.shop_id == shop_id)
    return (await session.exec(query)).all()


async def _mirror(session: AsyncSession, room: rules.Room, peak_viewers: int = 0) -> None:
    """Copy the status, times and peak audience to the SQL record (after Redis accepted the
    change). The peak only ever rises, whatever order two mirrors run in."""
    await session.exec(
        update(LiveRoom)
        .where(col(LiveRoom.id) == room["id"])
        .values(status=room["status"], started_ms=room["started_ms"], ended_ms=room["ended_ms"])
    )
    await session.exec(
        update(LiveRoom)
        .where(col(LiveRoom.id) == room["id"], col(LiveRoom.peak_viewers) < peak_viewers)
        .values(peak_viewers=peak_viewers)
    )
    await session.commit()


async def go_live(session: AsyncSession, store: RoomStore, room_id: int) -> Committed:
    done = await store.update(room_id, lambda r: rules.go_live(r, now_ms()))
    await _mirror(session, done.change.room)
    return done


async def end(
    session: AsyncSession,
    store: RoomStore,
    holds: HoldStore,
    room_id: int,
    reason: str = "creator",
    formats: Sequence[Auctions | Giveaways] = (),
) -> Committed:
    """Stop the room's running deals in the stores, then end the room (and its deals) for
    viewers. Its open auctions and giveaways close now (``formats``)."""
    snap = await store.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    for deal_id in rules.live_deal_ids(snap.room):
        await _stop_deal_in_stores(session, holds, deal_id)
    done = await store.update(room_id, lambda r: rules.end(r, now_ms(), reason))
    # A deal scheduled while we were ending (another tab) is ended by the commit: stop it too.
    for event in done.change.events:
        if event["type"] == "deal.ended":
            await _stop_deal_in_stores(session, holds, event["deal_id"])
    await _mirror(session, done.change.room, await store.peak_viewers(room_id))
    for format_ in formats:
        await format_.close_all(room_id)
    return done


async def product_card(session: AsyncSession, seller: Seller, product_id: int) -> dict[str, Any]:
    """The card of one of the seller's products, or of another shop's that a plan open to the
    seller offers (decision 0046)."""
    product = await session.get(Product, product_id)
    if product is not None and not await catalog.in_shop_of(session, seller, product.shop_id):
        product = await affiliates.offered_product(session, seller, product_id)
    else:
        product = await catalog.sellable_product(session, seller, product_id)
    return card_of(product, await catalog.skus_of(session, product_id))


def card_of(product: Product, skus: Sequence[Sku]) -> dict[str, Any]:
    """A product as a room's bag, pin and pages show it: title, first picture, SKUs."""
    return {
        "product_id": product.id,
        "shop_id": product.shop_id,
        "title": product.title,
        "image": product.image_urls[0] if product.image_urls else None,
        "options": product.options,
        "skus": [
            {
                "sku_id": s.id,
                "variant": s.variant,
                "options": s.options,
                "image": s.image_url,  # "" for none: show the product's picture
                "list_price": s.list_price,
                "currency": s.currency,
            }
            for s in skus
        ],
    }


async def add_product(
    session: AsyncSession, store: RoomStore, seller: Seller, room_id: int, product_id: int
) -> Committed:
    card = await product_card(session, seller, product_id)
    return await store.update(room_id, lambda r: rules.add_to_bag(r, card, now_ms()))


async def schedule_deal(
    session: AsyncSession,
    store: RoomStore,
    holds: HoldStore,
    seller: Seller,
    room_id: int,
    terms: rules.FlashDealTerms,
    *,
    hold_ttl_ms: int,
    pay_ttl_ms: int,
) -> Committed:
    """Create the deal, allocate its units and load it into Redis with its window (reserving
    opens by itself at ``starts_ms``), then announce it to the room."""
    snap = await store.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    rules.require_live(snap.room)  # fail before touching any stock
    rules.sku_in_bag(snap.room, terms.sku_id)
    sku = await catalog.get_sku(session, terms.sku_id)
    own = await catalog.in_shop_of(session, seller, sku.shop_id)
    if own:
        await catalog.owned_sku(session, seller, terms.sku_id)
    rules.check_flash_window(terms)  # its terms are checked by create_deal, as every deal's
    starts = await store.server_ms() + terms.countdown_s * 1000
    deal_terms = DealTerms(
        deal_price=terms.deal_price,
        quantity=terms.quantity,
        per_buyer_limit=terms.per_buyer_limit,
        starts_ms=starts,
        ends_ms=starts + terms.duration_s * 1000,
        accounts_only=terms.accounts_only,
    )
    if own:
        deal = await catalog.create_deal(session, seller, terms.sku_id, deal_terms, room_id=room_id)
    else:  # another shop's SKU, under a plan open to this creator (decision 0046)
        deal = await affiliates.create_affiliate_deal(
            session, seller, terms.sku_id, deal_terms, room_id, snap.room["shop_id"]
        )
    return await open_deal(
        session, store, holds, room_id, deal, hold_ttl_ms=hold_ttl_ms, pay_ttl_ms=pay_ttl_ms
    )


async def open_deal(
    session: AsyncSession,
    store: RoomStore,
    holds: HoldStore,
    room_id: int,
    deal: Deal,
    *,
    hold_ttl_ms: int,
    pay_ttl_ms: int,
) -> Committed:
    """Start a deal recorded for this room (allocate its units, load its stock and window into
    Redis), then announce it to the room's viewers with its card."""
    snap = await store.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    product, _ = rules.sku_in_bag(snap.room, deal.sku_id)
    sku = await catalog.get_sku(session, deal.sku_id)
    deal = await deals.start(session, holds, deal, hold_ttl_ms=hold_ttl_ms, pay_ttl_ms=pay_ttl_ms)
    assert deal.id is not None
    await store.link_deal(deal.id, room_id)
    card = {
        "deal_id": deal.id,
        "product_id": product["product_id"],
        "sku_id": sku.id,
        "title": product["title"],
        "image": product["image"],
        "variant": sku.variant,
        "list_price": sku.list_price,
        **deals.terms_json(deal),
    }
    try:
        return await store.update(room_id, lambda r: rules.schedule_deal(r, card, now_ms()))
    except DomainError:
        # The room ended meanwhile: give the units back rather than strand a deal nobody sees.
        await _stop_deal_in_stores(session, holds, deal.id)
        raise


async def stop_deal(
    session: AsyncSession, store: RoomStore, holds: HoldStore, room_id: int, deal_id: int
) -> Committed:
    snap = await store.read(room_id)
    if snap is None:
        raise NotFound("No such room.", code=LiveErrorCode.ROOM_NOT_FOUND, room_id=room_id)
    rules.stop_deal(snap.room, deal_id, 0)  # refuse before touching the stores
    await _stop_deal_in_stores(session, holds, deal_id)
    return await store.update(room_id, lambda r: rules.stop_deal(r, deal_id, now_ms()))


async def _stop_deal_in_stores(session: AsyncSession, holds: HoldStore, deal_id: int) -> None:
    deal = await session.get(Deal, deal_id)
    if deal is not None and deal.status in (DealStatus.SCHEDULED, DealStatus.LIVE):
        try:
            await deals.stop(session, holds, deal)
        except Conflict as err:
            # Another node's sweeper, or the creator's End, stopped it first: that is done.
            if err.code is not CatalogErrorCode.DEAL_NOT_LIVE:
                raise


class Advanced(NamedTuple):
    room: rules.Room | None
    seq: int  # the room's last event number as this call saw it
    left: dict[int, int]  # units left per running deal


async def advance(store: RoomStore, holds: HoldStore, room_id: int) -> Advanced:
    """Move the room's deals along the clock (Redis's, which the reserve script enforces) and
    its sold-out flags along the stock. Safe on any number of nodes at once: each change is a
    compare-and-set, and one found already made is not made again."""
    snap = await store.read(room_id)
    if snap is None:
        return Advanced(None, 0, {})
    room, seq = snap.room, snap.seq
    if room["status"] == RoomStatus.ENDED:
        return Advanced(room, seq, {})
    now = await store.server_ms()
    if rules.deals_due(room, now):
        done = await store.update(room_id, lambda r: rules.tick(r, now))
        room, seq = done.change.room, max(seq, done.seq)
    left: dict[int, int] = {}
    for deal in room["deals"]:
        if deal["status"] not in RUNNING:
            continue
        state = await holds.snapshot(deal["deal_id"])  # lapsed holds are returned first
        if state is None:
            continue
        left[deal["deal_id"]] = state.available
        if deal["status"] == FlashDealStatus.LIVE and deal["sold_out"] != (state.available == 0):
            done = await store.update(
                room_id, _stock_rule(deal["deal_id"], state.available, state.server_ms)
            )
            room, seq = done.change.room, max(seq, done.seq)
    return Advanced(room, seq, left)


def _stock_rule(deal_id: int, left: int, now: int) -> Callable[[rules.Room], rules.Change]:
    return lambda room: rules.stock_changed(room, deal_id, left, now)


class RoomSweep:
    """Every open room, watched on this node or not, once a round (``interval_ms``): its deals
    move along the clock, a video whose publisher's node stopped renewing its claim (it
    crashed) ends, and a room nobody has hosted for ``unhosted_end_ms`` (0: never) ends.
    ``hosted_here``: rooms this process hosts itself. The node's room ticker runs a share of
    the round each tick, so a long list of rooms never holds up the stock of watched ones."""

    def __init__(
        self,
        db: Database,
        unhosted_end_ms: int,
        interval_ms: int,
        hosted_here: tuple[int, ...] = (),
    ) -> None:
        self.db = db
        self.unhosted_end_ms = unhosted_end_ms
        self.interval_ms = interval_ms
        self.hosted_here = hosted_here
        self._due: deque[int] = deque()
        self._share = 0
        self._next_round = 0.0

    async def share(
        self,
        store: RoomStore,
        holds: HoldStore,
        tick_s: float,
        advanced: Mapping[int, Advanced],
        formats: Sequence[Auctions | Giveaways] = (),
    ) -> None:
        """Sweep this tick's share of the round (a new round starts once the last one is done
        and ``interval_ms`` has passed); ``advanced`` has the rooms this tick already moved."""
        now = asyncio.get_running_loop().time()
        if not self._due and now >= self._next_round:
            self._next_round = now + self.interval_ms / 1000
            # Open rooms, and ended ones whose auctions or giveaways are not finished yet.
            rooms = set(await store.open_room_ids()) | set(await store.format_room_ids())
            self._due = deque(sorted(rooms))
            ticks = max(1, round(self.interval_ms / 1000 / tick_s))
            self._share = -(-len(self._due) // ticks)
        for _ in range(min(self._share, len(self._due))):
            room_id = self._due.popleft()
            try:
                await _sweep_room(store, holds, self, room_id, advanced.get(room_id), formats)
                if room_id not in advanced:  # (a watched room's tick did it already)
                    for format_ in formats:
                        await format_.advance(room_id)  # closes, draws, awards, next rounds
                await _untrack_if_done(store, room_id, formats)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One room's trouble must not hold up every other room's clock.
                log.exception("sweep of room %s failed; will retry", room_id)


async def _untrack_if_done(
    store: RoomStore, room_id: int, formats: Sequence[Auctions | Giveaways]
) -> None:
    """Stop following a room's formats once none is left unfinished."""
    for format_ in formats:
        if await format_.active(room_id):
            return
    if formats:
        await store.untrack_formats(room_id)


async def _sweep_room(
    store: RoomStore,
    holds: HoldStore,
    sweep: RoomSweep,
    room_id: int,
    advanced: Advanced | None,
    formats: Sequence[Auctions | Giveaways] = (),
) -> None:
    room = (advanced or await advance(store, holds, room_id)).room
    if room is None or room["status"] == RoomStatus.ENDED:
        return
    streaming = room.get("stream") is not None and await store.stream_claimed(room_id)
    if room.get("stream") and not streaming:
        await stop_stream(store, room_id, "lost")
    if await _abandoned(store, room_id, streaming or room_id in sweep.hosted_here, sweep):
        async with sweep.db.session() as session:
            await end(session, store, holds, room_id, "unhosted", formats)
        log.info("room %s ended: nobody hosted it for %d s", room_id, sweep.unhosted_end_ms // 1000)


async def _abandoned(store: RoomStore, room_id: int, hosted: bool, sweep: RoomSweep) -> bool:
    """Has the room gone unhosted for too long? Its creator's connections (on any node) mark it
    hosted through the gateway; its video and this process's own rooms through this sweep."""
    now = await store.server_ms()
    last = await store.last_hosted(room_id)
    if hosted or last is None:
        await store.mark_hosted(room_id, now)
        return False
    return sweep.unhosted_end_ms > 0 and now - last >= sweep.unhosted_end_ms


async def start_stream(session: AsyncSession, store: RoomStore, room_id: int) -> Committed:
    """The creator's video arrived: tell viewers (the room goes live with it if need be)."""
    await store.forget_stream_failure(room_id)  # a studio joining now needs no old failure
    done = await store.update(room_id, lambda r: rules.start_stream(r, now_ms()))
    await _mirror(session, done.change.room)
    return done


async def stop_stream(store: RoomStore, room_id: int, reason: str) -> Committed:
    return await store.update(room_id, lambda r: rules.stop_stream(r, reason, now_ms()))
