"""What a creator's action or the clock does to a room: pure functions over plain data.

A room's state is a JSON-shaped dict (it is stored as JSON in Redis and sent to viewers as the
snapshot). Every rule takes the state and returns a ``Change``: the new state and the events to
publish, in order. Nothing here does I/O or reads the clock; ``now`` is passed in.
"""

from __future__ import annotations

import copy
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from catalog.error_codes import CatalogErrorCode
from kernel.errors import Conflict, Invalid, NotFound
from live.error_codes import LiveErrorCode
from live.room_states import RUNNING, FlashDealStatus, RoomStatus

Room = dict[str, Any]
Event = dict[str, Any]

MAX_BAG = 100
MAX_TITLE = 120
MIN_COUNTDOWN_S, MAX_COUNTDOWN_S = 10, 300
MIN_RUN_S, MAX_RUN_S = 60, 20 * 60
MAX_CHAT_CHARS = 200
MAX_NAME_CHARS = 32


@dataclass
class Change:
    room: Room
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class FlashDealTerms:
    sku_id: int
    deal_price: int
    quantity: int
    per_buyer_limit: int
    countdown_s: int
    duration_s: int
    accounts_only: bool = False


def new_room(room_id: int, shop_id: int, seller_id: int, title: str, now: int) -> Room:
    return {
        "id": room_id,
        "shop_id": shop_id,
        "seller_id": seller_id,
        "title": clean_title(title),
        "status": RoomStatus.SCHEDULED,
        "created_ms": now,
        "started_ms": None,
        "ended_ms": None,
        "bag": [],
        "pinned": None,
        "deals": [],
        "stream": None,
        "voucher": None,
    }


def current(room: Room) -> Room:
    """A room as stored by an older version, with the keys added since (at their defaults)."""
    room.setdefault("stream", None)
    room.setdefault("voucher", None)
    return room


def clean_title(title: str) -> str:
    text = " ".join(title.split())
    if not text or len(text) > MAX_TITLE:
        raise Invalid(
            f"A room title is 1-{MAX_TITLE} characters.",
            code=LiveErrorCode.INVALID_TITLE,
            max=MAX_TITLE,
        )
    return text


def _open(room: Room) -> None:
    if room["status"] == RoomStatus.ENDED:
        raise Conflict("The room has ended.", code=LiveErrorCode.ROOM_ENDED, room_id=room["id"])


def require_live(room: Room) -> None:
    _open(room)
    if room["status"] != RoomStatus.LIVE:
        raise Conflict(
            "The room is not live yet.", code=LiveErrorCode.ROOM_NOT_LIVE, room_id=room["id"]
        )


def go_live(room: Room, now: int) -> Change:
    _open(room)
    if room["status"] == RoomStatus.LIVE:
        return Change(room)
    room = copy.deepcopy(room)
    room["status"], room["started_ms"] = RoomStatus.LIVE, now
    return Change(room, [{"type": "room.live", "ms": now}])


def end(room: Room, now: int, reason: str = "creator") -> Change:
    """End the room; deals still running end with it (the caller stops them in the stores).
    ``reason``: "creator" (they ended it) or "unhosted" (left without its creator or video
    for too long, ended by the sweeper)."""
    if room["status"] == RoomStatus.ENDED:
        return Change(room)
    room = copy.deepcopy(room)
    events: list[Event] = []
    for deal in room["deals"]:
        if deal["status"] != FlashDealStatus.ENDED:
            deal["status"] = FlashDealStatus.ENDED
            events.append(
                {
                    "type": "deal.ended",
                    "deal_id": deal["deal_id"],
                    "reason": "room_ended",
                    "ms": now,
                }
            )
    if room["pinned"] is not None:
        room["pinned"] = None
        events.append({"type": "unpin", "ms": now})
    if room.get("stream") is not None:
        room["stream"] = None
        events.append({"type": "stream.ended", "reason": "room_ended", "ms": now})
    room["status"], room["ended_ms"] = RoomStatus.ENDED, now
    events.append({"type": "room.ended", "reason": reason, "ms": now})
    return Change(room, events)


def start_stream(room: Room, now: int) -> Change:
    """The creator's video arrived (WHIP): the room goes live with it if it was not yet."""
    _open(room)
    room = copy.deepcopy(room)
    events: list[Event] = []
    if room["status"] != RoomStatus.LIVE:
        room["status"], room["started_ms"] = RoomStatus.LIVE, now
        events.append({"type": "room.live", "ms": now})
    room["stream"] = {"started_ms": now}
    events.append({"type": "stream.started", "ms": now})
    return Change(room, events)


def stop_stream(room: Room, reason: str, now: int) -> Change:
    """The video stopped: the creator hung up ("stopped") or their connection went ("lost").
    The room stays live: deals and chat go on, and the creator can come back."""
    if room.get("stream") is None:
        return Change(room)
    room = copy.deepcopy(room)
    room["stream"] = None
    return Change(room, [{"type": "stream.ended", "reason": reason, "ms": now}])


def _bag_item(room: Room, product_id: int) -> dict[str, Any]:
    for item in room["bag"]:
        if item["product_id"] == product_id:
            found: dict[str, Any] = item
            return found
    raise NotFound(
        "That product is not in this room's bag.",
        code=LiveErrorCode.PRODUCT_NOT_IN_BAG,
        product_id=product_id,
    )


def add_to_bag(room: Room, card: dict[str, Any], now: int) -> Change:
    """``card`` is the product as viewers see it: id, title, image and SKUs with list prices."""
    _open(room)
    if any(item["product_id"] == card["product_id"] for item in room["bag"]):
        return Change(room)
    if len(room["bag"]) >= MAX_BAG:
        raise Conflict(
            f"A room's bag holds at most {MAX_BAG} products.", code=LiveErrorCode.BAG_FULL
        )
    room = copy.deepcopy(room)
    room["bag"].append(card)
    return Change(room, [{"type": "bag.added", "product": card, "ms": now}])


def remove_from_bag(room: Room, product_id: int, now: int) -> Change:
    _open(room)
    _bag_item(room, product_id)
    room = copy.deepcopy(room)
    room["bag"] = [item for item in room["bag"] if item["product_id"] != product_id]
    events: list[Event] = []
    if room["pinned"] == product_id:
        room["pinned"] = None
        events.append({"type": "unpin", "ms": now})
    events.append({"type": "bag.removed", "product_id": product_id, "ms": now})
    return Change(room, events)


def pin(room: Room, product_id: int, now: int) -> Change:
    _open(room)
    card = _bag_item(room, product_id)
    if room["pinned"] == product_id:
        return Change(room)
    room = copy.deepcopy(room)
    room["pinned"] = product_id
    return Change(room, [{"type": "pin", "product": card, "ms": now}])


def unpin(room: Room, now: int) -> Change:
    _open(room)
    if room["pinned"] is None:
        return Change(room)
    room = copy.deepcopy(room)
    room["pinned"] = None
    return Change(room, [{"type": "unpin", "ms": now}])


def drop_voucher(room: Room, card: dict[str, Any], now: int) -> Change:
    """The creator drops a voucher into the live room: every viewer is told (and shown a claim
    button), and a viewer who joins later sees it in the room until another replaces it or the
    room ends. The caller checked the voucher is this room's shop's and claimable here."""
    require_live(room)
    room = copy.deepcopy(room)
    room["voucher"] = card
    return Change(room, [{"type": "voucher.dropped", "voucher": card, "ms": now}])


def set_comment_buy(room: Room, keywords: list[str] | None, now: int) -> Change:
    """Comment-to-buy on (with its keywords) or off (None): a chat line starting with a keyword
    claims the pinned product (decision 0033). Viewers are told, so their pages can say so."""
    _open(room)
    if room.get("comment_buy") == ({"keywords": keywords} if keywords else None):
        return Change(room)
    room = copy.deepcopy(room)
    room["comment_buy"] = {"keywords": keywords} if keywords else None
    return Change(room, [{"type": "comment_buy", "keywords": keywords or [], "ms": now}])


def sku_in_bag(room: Room, sku_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bag product and SKU a flash deal would sell; a deal only sells what is on offer."""
    for item in room["bag"]:
        for sku in item["skus"]:
            if sku["sku_id"] == sku_id:
                return item, sku
    raise NotFound(
        "Add the SKU's product to the room's bag first.",
        code=LiveErrorCode.SKU_NOT_IN_BAG,
        sku_id=sku_id,
    )


def check_flash_window(terms: FlashDealTerms) -> None:
    """How long a room counts a flash deal down and runs it, each rule with its own code. The
    deal's terms (price, quantity, limit) are checked where every deal is made:
    ``catalog.rules.check_deal_terms``."""
    if not MIN_COUNTDOWN_S <= terms.countdown_s <= MAX_COUNTDOWN_S:
        raise Invalid(
            f"The countdown is {MIN_COUNTDOWN_S}-{MAX_COUNTDOWN_S} seconds.",
            code=CatalogErrorCode.INVALID_COUNTDOWN,
            min=MIN_COUNTDOWN_S,
            max=MAX_COUNTDOWN_S,
        )
    if not MIN_RUN_S <= terms.duration_s <= MAX_RUN_S:
        raise Invalid(
            f"A flash deal runs {MIN_RUN_S // 60}-{MAX_RUN_S // 60} minutes.",
            code=CatalogErrorCode.INVALID_DURATION,
            min=MIN_RUN_S,
            max=MAX_RUN_S,
        )


def schedule_deal(room: Room, deal: dict[str, Any], now: int) -> Change:
    """``deal`` is the deal card: ids, prices, quantity, limit and its window on the server's
    clock. The countdown runs from now to ``starts_ms``."""
    require_live(room)
    room = copy.deepcopy(room)
    card = {**deal, "status": FlashDealStatus.SCHEDULED, "sold_out": False}
    room["deals"].append(card)
    return Change(room, [{"type": "deal.scheduled", "deal": card, "ms": now}])


def _deal(room: Room, deal_id: int) -> dict[str, Any]:
    for deal in room["deals"]:
        if deal["deal_id"] == deal_id:
            found: dict[str, Any] = deal
            return found
    raise NotFound(
        "No such deal in this room.", code=CatalogErrorCode.DEAL_NOT_FOUND, deal_id=deal_id
    )


def stop_deal(room: Room, deal_id: int, now: int) -> Change:
    _open(room)
    if _deal(room, deal_id)["status"] == FlashDealStatus.ENDED:
        raise Conflict(
            "The deal has already ended.", code=CatalogErrorCode.DEAL_ENDED, deal_id=deal_id
        )
    room = copy.deepcopy(room)
    _deal(room, deal_id)["status"] = FlashDealStatus.ENDED
    return Change(
        room, [{"type": "deal.ended", "deal_id": deal_id, "reason": "stopped", "ms": now}]
    )


def deals_due(room: Room, now: int) -> bool:
    """Would ``tick`` move a deal now? (Cheaper to ask than to tick: no copy of the room.)"""
    return any(
        (d["status"] == FlashDealStatus.SCHEDULED and now >= d["starts_ms"])
        or (d["status"] == FlashDealStatus.LIVE and now >= d["ends_ms"])
        for d in room["deals"]
    )


def tick(room: Room, now: int) -> Change:
    """Move deals along their windows: scheduled -> live at ``starts_ms``, live -> ended at
    ``ends_ms``. Any node may call this; the store's version check lets one of them win."""
    events: list[Event] = []
    room = copy.deepcopy(room)
    for deal in room["deals"]:
        if deal["status"] == FlashDealStatus.SCHEDULED and now >= deal["starts_ms"]:
            deal["status"] = FlashDealStatus.LIVE
            events.append(
                {
                    "type": "deal.live",
                    "deal_id": deal["deal_id"],
                    "ends_ms": deal["ends_ms"],
                    "ms": now,
                }
            )
        if deal["status"] == FlashDealStatus.LIVE and now >= deal["ends_ms"]:
            deal["status"] = FlashDealStatus.ENDED
            events.append(
                {"type": "deal.ended", "deal_id": deal["deal_id"], "reason": "time", "ms": now}
            )
    return Change(room, events)


def stock_changed(room: Room, deal_id: int, left: int, now: int) -> Change:
    """A live deal with nothing left is sold out; units coming back (lapsed holds) reopen it."""
    deal = _deal(room, deal_id)
    if deal["status"] != FlashDealStatus.LIVE or deal["sold_out"] == (left == 0):
        return Change(room)
    room = copy.deepcopy(room)
    deal = _deal(room, deal_id)
    deal["sold_out"] = left == 0
    kind = "deal.sold_out" if left == 0 else "deal.restocked"
    return Change(room, [{"type": kind, "deal_id": deal_id, "left": left, "ms": now}])


def clean_chat(text: object) -> str:
    """Chat is plain text: control characters go, whitespace runs collapse, length is capped.
    Markup is not stripped; it is delivered as data and shown as text."""
    if not isinstance(text, str):
        raise Invalid("Chat text must be a string.", code=LiveErrorCode.INVALID_CHAT)
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )
    cleaned = " ".join(kept.split())
    if not cleaned:
        raise Invalid("Say something.", code=LiveErrorCode.EMPTY_CHAT)
    if len(cleaned) > MAX_CHAT_CHARS:
        raise Invalid(
            f"Chat lines are at most {MAX_CHAT_CHARS} characters.",
            code=LiveErrorCode.CHAT_TOO_LONG,
            max=MAX_CHAT_CHARS,
        )
    return cleaned


def clean_name(name: object, fallback: str) -> str:
    if not isinstance(name, str):
        return fallback
    kept = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    cleaned = " ".join(kept.split())[:MAX_NAME_CHARS]
    return cleaned or fallback


def live_deal_ids(room: Room) -> list[int]:
    return [d["deal_id"] for d in room["deals"] if d["status"] in RUNNING]


def has_deal(room: Room, deal_id: int) -> bool:
    return any(d["deal_id"] == deal_id for d in room["deals"])
