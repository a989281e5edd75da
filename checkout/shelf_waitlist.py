"""A sold-out list-price SKU's waitlist (decision 0036): join, see your place, leave. Units that
come back to the shelf (a hold lapsed or given back, a restock) are kept for the first waiting,
one each, inside the shop's Redis Function that returned them (``lua/shelf.lua``); the waiter's
next checkout of the SKU takes the kept unit and prices it as any checkout does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.error_codes import CatalogErrorCode
from checkout.error_codes import CheckoutErrorCode
from checkout.hold_states import HoldState
from checkout.shelving import Shelving
from kernel.db import Database
from kernel.errors import Conflict, NotFound


@dataclass(frozen=True)
class Place:
    place: int  # from 1; 0: not waiting
    waiting: int
    kept: str  # the hold kept for the buyer ("" for none)
    kept_until_ms: int

    def json(self) -> dict[str, Any]:
        """As a deal's waitlist answers: the kept unit, if any, is the one hold listed."""
        holds = []
        if self.kept:
            kept = {"id": self.kept, "qty": 1, "state": HoldState.OFFERED}
            holds.append({**kept, "expires_ms": self.kept_until_ms})
        return {"place": self.place, "waiting": self.waiting, "holds": holds}


class ShelfWaitlist:
    def __init__(self, shelving: Shelving) -> None:
        self.shelving = shelving
        self.shelf = shelving.shelf

    async def _shop(self, db: Database, sku_id: int) -> int:
        shops = await self.shelf.shops_of([sku_id])
        if sku_id not in shops:  # never on a shelf: its terms come from SQL, once
            async with db.session() as session:
                await self.shelving.publish(session, [sku_id])
            shops = await self.shelf.shops_of([sku_id])
        if sku_id not in shops:
            raise _not_on_sale(sku_id)
        return shops[sku_id]

    async def join(self, db: Database, sku_id: int, buyer: str, channel: str) -> Place:
        """Take a place in the SKU's line if it is sold out. ``channel``: the room channel
        that tells the buyer of an offer ("" for none: they ask with ``place``)."""
        shop = await self._shop(db, sku_id)
        # Every free unit goes on the shelf first: a SKU is sold out only when none is left
        # there after that.
        async with db.session() as session:
            await self.shelving.fill(session, [sku_id])
        answer = await self.shelf.wait(shop, sku_id, buyer, channel)
        if answer[0] == "not_sold_out":
            raise Conflict(
                "Units are left: check one out instead.",
                code=CheckoutErrorCode.NOT_SOLD_OUT,
                sku_id=sku_id,
            )
        if answer[0] == "off_sale":
            raise _not_on_sale(sku_id)
        return await self.place(db, sku_id, buyer)

    async def place(self, db: Database, sku_id: int, buyer: str) -> Place:
        shop = await self._shop(db, sku_id)
        return Place(*await self.shelf.waiting(shop, sku_id, buyer))

    async def leave(self, db: Database, sku_id: int, buyer: str) -> None:
        shops = await self.shelf.shops_of([sku_id])
        if sku_id in shops:
            await self.shelf.unwait(shops[sku_id], sku_id, buyer)


def _not_on_sale(sku_id: int) -> NotFound:
    return NotFound(
        "No SKU of that id is on sale.", code=CatalogErrorCode.SKU_NOT_FOUND, sku_id=sku_id
    )
