"""Claiming rows left pending (refunds, payouts) so that one node finishes each.

A row is stale when nothing has touched it for one lease; whoever moves its ``updated_ms`` from
the value it read to ``now`` (a guarded UPDATE) owns the next attempt, and the others skip it.
``now`` is the caller's clock (the order sweep's), the same one it stamps rows with, so rows
stamped by a clock ahead of the wall clock (a test's moved clock, a node whose time ran ahead)
are not skipped for as long as the difference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from sqlalchemy import select as core_select
from sqlalchemy import update
from sqlmodel import SQLModel, col

from checkout.models import Payout, Refund
from kernel.db import Database

Row = TypeVar("Row", Refund, Payout)

PENDING = "pending"  # RefundStatus.PENDING and PayoutStatus.PENDING


async def claim_stale(
    db: Database, model: type[Row], keyspace: str, lease_ms: int, now: int, limit: int
) -> AsyncIterator[Row]:
    """The pending rows of ``keyspace`` untouched for ``lease_ms``, oldest first, each claimed
    just before it is yielded (claiming all first would let them go stale again while the
    earlier ones are being finished)."""
    table: type[SQLModel] = model
    async with db.session() as session:
        conn = await session.connection()
        rows = await conn.execute(
            core_select(table)
            .where(
                col(model.status) == PENDING,
                col(model.keyspace) == keyspace,
                # <=: with a lease of 0 (a test that knows the request died) a row touched
                # in this very millisecond is claimed too.
                col(model.updated_ms) <= now - lease_ms,
            )
            .order_by(col(model.updated_ms))
            .limit(limit)
        )
        stale = [model.model_validate(r._mapping) for r in rows.all()]
    for row in stale:
        async with db.session() as session:
            moved = await session.exec(
                update(model)
                .where(
                    col(model.id) == row.id,
                    col(model.updated_ms) == row.updated_ms,
                    col(model.status) == PENDING,
                )
                .values(updated_ms=now)
            )
            await session.commit()
        if moved.rowcount == 1:
            yield row
