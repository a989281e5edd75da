"""Moving units between a SKU's free stock in SQL and its shop's shelf in Redis (decision 0028).

SQL's ``skus`` row stays the one arbiter of who may sell a unit: a unit is free (``stock -
allocated - shelved``), promised to a started deal (``allocated``), or on the shelf
(``shelved``). Each move is a ``shelf_moves`` row written before Redis is asked and finished
after, in the transaction that changes ``shelved``:

* onto the shelf: the row and ``shelved += n`` (guarded: only free units) commit first, then
  Redis adds the units. A crash between leaves the row pending; the units are counted on the
  shelf and not yet sellable there, and the sweeper adds them (the tag makes it once).
* off the shelf (a deal needs them, or the seller lowers the stock): the row commits first,
  then Redis takes the units if they are available there (never held or sold ones), then
  ``shelved -= n``. A crash between: the sweeper asks Redis again under the tag, which answers
  as it did, and finishes the row.

Units go onto the shelf when a cart cannot be held for want of them (``fill``), so a shop's
shelf holds what buyers asked for, and a deal takes back only what it needs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy import select as core_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Product, Shop, Sku
from checkout import promotions
from checkout.faults import NO_CRASH, CrashPoints
from checkout.models import ShelfMove
from checkout.shelf import SaleTerms, ShelfStore
from kernel.clock import now_ms

log = logging.getLogger("livecart.shelving")

PENDING, DONE, SHORT = "pending", "done", "short"


class Shelving:
    """The moves, each in the caller's session: every step commits before the next store is
    asked, so the session must hold no work of the caller's when it is passed in."""

    def __init__(self, shelf: ShelfStore, crash: CrashPoints = NO_CRASH) -> None:
        self.shelf = shelf
        self.keyspace = shelf.keys.prefix
        self.crash = crash

    async def publish(self, session: AsyncSession, sku_ids: Iterable[int]) -> int:
        """Push the SKUs' sale terms (price, currency, on sale) from SQL to their shops'
        shelves, where holds price their lines. Returns how many SKUs were found."""
        wanted = sorted(set(sku_ids))
        if not wanted:
            return 0
        rows = (await (await session.connection()).execute(_terms_query(wanted))).all()
        await session.commit()
        by_shop: dict[int, list[SaleTerms]] = {}
        for sku_id, shop_id, price, currency, archived, product_id in rows:
            terms = SaleTerms(sku_id, price, currency, archived is None, product_id)
            by_shop.setdefault(shop_id, []).append(terms)
        for shop_id, terms_of_shop in by_shop.items():
            await self.shelf.set_terms(shop_id, terms_of_shop)
        return len(rows)

    async def publish_promotions(self, session: AsyncSession, shop_id: int) -> str:
        """Push the shop's promotions not yet ended from SQL to its shelf; returns them as
        pushed."""
        encoded = await promotions.encoded_for(session, shop_id, now_ms())
        await session.commit()
        await self.shelf.set_promotions(shop_id, encoded)
        return encoded

    async def publish_shipping(self, session: AsyncSession, shop_id: int) -> str:
        """Push the shop's shipping rule from SQL to its shelf; returns the rule pushed."""
        rule = await _shipping_rule(session, shop_id)
        await session.commit()
        await self.shelf.set_shipping(shop_id, rule)
        return rule

    async def publish_product(self, session: AsyncSession, product_id: int) -> int:
        """Push the terms of every SKU of a product (after an edit, an archive, an unarchive)."""
        query = core_select(col(Sku.id)).where(col(Sku.product_id) == product_id)
        ids = [
            sku_id or 0 for sku_id in (await (await session.connection()).execute(query)).scalars()
        ]
        await session.commit()
        return await self.publish(session, ids)

    async def resync(self, session: AsyncSession) -> int:
        """Push the terms of every SKU, and every shop's shipping rule and promotions, whose
        shelf says otherwise than SQL (a write to Redis lost after a seller's edit committed).
        Returns how many were pushed again."""
        stale: list[int] = []
        pushed_rules = 0
        for shop_id in await self.shelf.shop_ids():
            shelf_terms = await self.shelf.terms(shop_id)
            if not shelf_terms:
                continue
            query = _terms_query(sorted(shelf_terms))
            rows = (await (await session.connection()).execute(query)).all()
            await session.commit()
            for sku_id, _, price, currency, archived, product_id in rows:
                terms = SaleTerms(sku_id, price, currency, archived is None, product_id)
                if shelf_terms.pop(sku_id) != terms:
                    stale.append(sku_id)
            # What is left has no SQL row any more (a deleted SKU): off sale.
            gone = [t._replace(on_sale=False) for t in shelf_terms.values() if t.on_sale]
            await self.shelf.set_terms(shop_id, gone)
            stale += [t.sku_id for t in gone]
            shipping = await _shipping_rule(session, shop_id)
            await session.commit()
            if await self.shelf.shipping(shop_id) != shipping:
                await self.shelf.set_shipping(shop_id, shipping)
                pushed_rules += 1
            # Promotions: pushed again when SQL's differ, or when one has ended (its place on
            # the shelf is then given up; pricing skips it either way).
            promoted = await promotions.encoded_for(session, shop_id, now_ms())
            await session.commit()
            if await self.shelf.promotions(shop_id) not in ("", promoted):
                await self.shelf.set_promotions(shop_id, promoted)
                pushed_rules += 1
        await self.publish(session, stale)
        return len(stale) + pushed_rules

    async def withdraw(self, shop_id: int, sku_id: int) -> None:
        """A deleted SKU is off sale on its shop's shelf (if it was ever there)."""
        found = (await self.shelf.terms(shop_id)).get(sku_id)
        if found is not None and found.on_sale:
            await self.shelf.set_terms(shop_id, [found._replace(on_sale=False)])

    async def fill(self, session: AsyncSession, sku_ids: Iterable[int]) -> int:
        """Put every free unit of the SKUs on their shops' shelves, with their sale terms;
        returns how many units moved."""
        moved = 0
        await self.publish(session, sku_ids)
        for sku_id in sorted(set(sku_ids)):
            move = await self._begin_put(session, sku_id)
            if move is not None:
                self.crash.reach("shelf.after_intent")
                await self._finish(session, move)
                moved += move.units
            else:
                # Nothing free: another checkout's put may have counted the units shelved and
                # not reached Redis yet. Finishing it here too (idempotent under its tag, the
                # row moved once) puts them on sale now, so this checkout is not refused for
                # units about to arrive.
                moved += await self._finish_puts_of(session, sku_id)
        return moved

    async def _finish_puts_of(self, session: AsyncSession, sku_id: int) -> int:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(ShelfMove).where(
                col(ShelfMove.sku_id) == sku_id,
                col(ShelfMove.status) == PENDING,
                col(ShelfMove.keyspace) == self.keyspace,
                col(ShelfMove.units) > 0,
            )
        )
        pending = [ShelfMove.model_validate(r._mapping) for r in rows.all()]
        await session.commit()
        done = 0
        for move in pending:
            if await self._finish(session, move) == DONE:
                done += move.units
        return done

    async def _begin_put(self, session: AsyncSession, sku_id: int) -> ShelfMove | None:
        conn = await session.connection()
        row = (
            await conn.execute(
                core_select(
                    col(Sku.shop_id), col(Sku.stock), col(Sku.allocated), col(Sku.shelved)
                ).where(col(Sku.id) == sku_id)
            )
        ).first()
        if row is None:
            return None
        free = row.stock - row.allocated - row.shelved
        if free <= 0:
            return None
        guarded = await conn.execute(
            update(Sku)
            .where(
                col(Sku.id) == sku_id,
                col(Sku.stock) - col(Sku.allocated) - col(Sku.shelved) >= free,
            )
            .values(shelved=col(Sku.shelved) + free)
        )
        if guarded.rowcount != 1:  # a deal or a sale took some meanwhile: next time
            await session.rollback()
            return None
        move = _move(self.keyspace, row.shop_id, sku_id, free, "put")
        await conn.execute(insert(ShelfMove).values(**move.model_dump(exclude={"id"})))
        await session.commit()
        return move

    async def free(self, session: AsyncSession, sku_id: int, units: int, reason: str) -> bool:
        """Make ``units`` of the SKU free, taking what is missing off its shelf (all or none):
        True if they are free now."""
        return await self._make_free(
            session, sku_id, lambda r: units - (r.stock - r.allocated - r.shelved), reason
        )

    async def lower_to(self, session: AsyncSession, sku_id: int, stock: int) -> bool:
        """Before the stock is set to ``stock``: take off the shelf what would no longer be in
        stock (all or none); True if the shelf is within it now."""
        return await self._make_free(
            session, sku_id, lambda r: r.allocated + r.shelved - stock, "stock"
        )

    async def _make_free(
        self, session: AsyncSession, sku_id: int, missing_of: Callable[[Any], int], reason: str
    ) -> bool:
        conn = await session.connection()
        row = (
            await conn.execute(
                core_select(
                    col(Sku.shop_id), col(Sku.stock), col(Sku.allocated), col(Sku.shelved)
                ).where(col(Sku.id) == sku_id)
            )
        ).first()
        await session.commit()
        if row is None:
            return False
        missing = missing_of(row)
        if missing <= 0:
            return True
        if row.shelved < missing:
            return False
        return await self.take(session, row.shop_id, sku_id, missing, reason)

    async def take(
        self, session: AsyncSession, shop_id: int, sku_id: int, units: int, reason: str
    ) -> bool:
        """Take ``units`` of the SKU off its shelf (all or none); True if they are free now."""
        move = _move(self.keyspace, shop_id, sku_id, -units, reason)
        conn = await session.connection()
        await conn.execute(insert(ShelfMove).values(**move.model_dump(exclude={"id"})))
        await session.commit()
        self.crash.reach("shelf.after_intent")
        return await self._finish(session, move) == DONE

    async def _finish(self, session: AsyncSession, move: ShelfMove) -> str:
        """Ask Redis (again, under the tag) and write its answer with the change to ``shelved``
        it implies, once: the row moves from pending in the same transaction."""
        short = await self.shelf.move(move.shop_id, move.sku_id, move.units, move.tag)
        self.crash.reach("shelf.after_redis")
        status = DONE if short is None else SHORT
        conn = await session.connection()
        finished = await conn.execute(
            update(ShelfMove)
            .where(col(ShelfMove.tag) == move.tag, col(ShelfMove.status) == PENDING)
            .values(status=status, updated_ms=now_ms())
        )
        if finished.rowcount == 1 and move.units < 0 and status == DONE:
            await conn.execute(
                update(Sku)
                .where(col(Sku.id) == move.sku_id)
                .values(shelved=col(Sku.shelved) + move.units)
            )
        await session.commit()
        return status

    async def finish_pending(
        self, session: AsyncSession, lease_ms: int, now: int, limit: int = 200
    ) -> int:
        """Finish moves left pending for longer than ``lease_ms`` (their request died)."""
        conn = await session.connection()
        rows = await conn.execute(
            core_select(ShelfMove)
            .where(
                col(ShelfMove.status) == PENDING,
                col(ShelfMove.keyspace) == self.keyspace,
                col(ShelfMove.updated_ms) <= now - lease_ms,
            )
            .order_by(col(ShelfMove.id))
            .limit(limit)
        )
        stale = [ShelfMove.model_validate(r._mapping) for r in rows.all()]
        await session.commit()
        for move in stale:
            try:
                await self._finish(session, move)
            except Exception:  # one move's failure must not starve the others
                await session.rollback()
                log.exception("could not finish shelf move %s", move.tag)
        return len(stale)


async def _shipping_rule(session: AsyncSession, shop_id: int) -> str:
    """The shop's shipping rule as a shelf keeps it: "kind:fee:free_over"."""
    query = core_select(
        col(Shop.shipping_kind), col(Shop.shipping_fee), col(Shop.shipping_free_over)
    ).where(col(Shop.id) == shop_id)
    found = (await (await session.connection()).execute(query)).first()
    kind, fee, free_over = found if found is not None else ("flat", 0, 0)
    return f"{kind}:{fee}:{free_over}"


def _terms_query(sku_ids: list[int]) -> Any:
    """Each SKU's id, shop, price, currency, its product's archive time and its product."""
    return (
        core_select(
            col(Sku.id),
            col(Sku.shop_id),
            col(Sku.list_price),
            col(Sku.currency),
            col(Product.archived_ms),
            col(Sku.product_id),
        )
        .join(Product, col(Product.id) == col(Sku.product_id))
        .where(col(Sku.id).in_(sku_ids))
    )


def _move(keyspace: str, shop_id: int, sku_id: int, units: int, reason: str) -> ShelfMove:
    now = now_ms()
    return ShelfMove(
        tag=f"{reason}:{sku_id}:{uuid.uuid4().hex}",
        keyspace=keyspace,
        shop_id=shop_id,
        sku_id=sku_id,
        units=units,
        status=PENDING,
        created_ms=now,
        updated_ms=now,
    )
