"""Comment-to-buy (decision 0033): a chat line that starts with one of the room's keywords
claims the pinned product. The claim is a hold made by the same atomic calls as a tap: the
running flash deal's reserve when the pinned SKU has one (its per-buyer limit applies), else a
"buy now" hold on the shop's shelf at list price. The hold's request id is the chat line's
number, so a retried line can never claim twice."""

from __future__ import annotations

from typing import Any

from checkout.batcher import ReserveBatcher
from checkout.cart import Carts
from checkout.holds import Hold, ReserveRequest
from checkout.shelf import ShelfHold
from kernel.clock import now_ms
from kernel.db import Database
from live import rules
from live.comment_rules import is_claim, parse_claim
from live.room_states import FlashDealStatus
from live.store import RoomStore


class CommentSales:
    def __init__(
        self, store: RoomStore, carts: Carts, db: Database, batcher: ReserveBatcher
    ) -> None:
        self.store = store
        self.carts = carts
        self.db = db
        self.batcher = batcher

    @staticmethod
    def keywords(room: rules.Room) -> list[str]:
        """The room's keywords while comment-to-buy is on, else none."""
        on: dict[str, Any] | None = room.get("comment_buy")
        return list(on["keywords"]) if on else []

    def is_claim(self, room: rules.Room, text: str) -> bool:
        keywords = self.keywords(room)
        return bool(keywords) and is_claim(text, keywords)

    async def claim(
        self,
        room: rules.Room,
        user: str,
        address: str,
        text: str,
        chat_seq: int,
        *,
        account: bool = False,
    ) -> Hold | ShelfHold:
        """Hold what the line claims, or raise the refusal (nothing held) to tell the viewer."""
        pinned = next((p for p in room["bag"] if p["product_id"] == room["pinned"]), None)
        claim = parse_claim(text, pinned)
        request_id = f"chat{room['id']}-{chat_seq}"
        deal = next(
            (
                d
                for d in room["deals"]
                if d["sku_id"] == claim.sku_id and d["status"] == FlashDealStatus.LIVE
            ),
            None,
        )
        if deal is not None:
            hold: Hold | ShelfHold = await self.batcher.reserve(
                deal["deal_id"], ReserveRequest(user, claim.qty, request_id, address, account)
            )
        else:
            assert pinned is not None
            hold = await self.carts.checkout(
                self.db,
                user,
                request_id=request_id,
                shop_id=pinned["shop_id"],
                expected_total=None,
                items={claim.sku_id: claim.qty},
            )
        await self.store.post(
            room["id"],
            {
                "type": "chat.claimed",
                "chat_seq": chat_seq,
                "user": user,
                "qty": claim.qty,
                "sku_id": claim.sku_id,
                "ms": now_ms(),
            },
        )
        return hold
