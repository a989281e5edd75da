"""Payment attempts in SQL (decision 0017): written before the provider is called, settled by
whoever learns the outcome: the checkout that made the attempt, or the reconciler after a crash.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from checkout.models import PaymentAttempt
from kernel.clock import now_ms
from kernel.db import Database


class AttemptStatus(enum.StrEnum):
    PENDING = "pending"  # the provider may or may not have charged
    COMMITTED = "committed"  # charged, and the hold was sold by this attempt
    REFUNDED = "refunded"  # charged, and the charge given back (the hold had moved on)
    DECLINED = "declined"  # the provider refused the card
    VOID = "void"  # the provider never charged under this key
    # Charged for a hold that had moved on, and disputed by the buyer before it could be given
    # back: the provider refuses a refund while a dispute is open, and the bank returns the
    # money to the buyer (decision 0017).
    DISPUTED = "disputed"


# Outcomes after which the same key may try again (nothing was charged, or kept).
FINAL_WITHOUT_MONEY = (
    AttemptStatus.PENDING.value,
    AttemptStatus.VOID.value,
    AttemptStatus.DECLINED.value,
)


class AttemptStore:
    def __init__(self, db: Database, keyspace: str) -> None:
        self.db = db
        self.keyspace = keyspace  # the Redis key prefix: see PaymentAttempt.keyspace

    async def record(self, attempt: PaymentAttempt) -> None:
        """Write the attempt as pending, durably, before the provider is called. A retry of the
        same key makes the same row pending again: it is about to call the provider again."""
        values = {**attempt.model_dump(exclude={"id"}), "keyspace": self.keyspace}
        async with self.db.session() as session:
            insert: Any = (
                postgresql.insert(PaymentAttempt)
                if self.db.dialect == "postgresql"
                else sqlite.insert(PaymentAttempt)
            )
            statement = insert.values(**values).on_conflict_do_update(
                index_elements=["charge_key"],
                set_={"status": AttemptStatus.PENDING.value, "updated_ms": values["updated_ms"]},
                # Money that moved stays recorded: a committed or refunded attempt is final.
                where=col(PaymentAttempt.status).in_(FINAL_WITHOUT_MONEY),
            )
            await session.exec(statement)
            await session.commit()

    async def settle(
        self, charge_key: str, status: AttemptStatus, payment_ref: str = "", *, only_pending: bool
    ) -> bool:
        """Write an outcome. The attempt's own checkout knows the truth when it writes, so it
        overwrites; the reconciler writes only over ``pending`` (``only_pending``), so a later
        truth from the checkout is never overwritten by an earlier guess."""
        statement = (
            update(PaymentAttempt)
            .where(col(PaymentAttempt.charge_key) == charge_key)
            .values(status=status.value, updated_ms=now_ms())
        )
        if payment_ref:
            statement = statement.values(payment_ref=payment_ref)
        if only_pending:
            statement = statement.where(col(PaymentAttempt.status) == AttemptStatus.PENDING.value)
        async with self.db.session() as session:
            result = await session.exec(statement)
            await session.commit()
        return bool(result.rowcount)

    async def pending(self, updated_before_ms: int, limit: int = 500) -> list[PaymentAttempt]:
        """Pending attempts untouched since ``updated_before_ms``, oldest first."""
        query = (
            select(PaymentAttempt)
            .where(col(PaymentAttempt.status) == AttemptStatus.PENDING.value)
            .where(col(PaymentAttempt.keyspace) == self.keyspace)
            .where(col(PaymentAttempt.updated_ms) < updated_before_ms)
            .order_by(col(PaymentAttempt.updated_ms))
            .limit(limit)
        )
        async with self.db.session() as session:
            return list((await session.exec(query)).all())

    async def get(self, charge_key: str) -> PaymentAttempt | None:
        query = select(PaymentAttempt).where(col(PaymentAttempt.charge_key) == charge_key)
        async with self.db.session() as session:
            return (await session.exec(query)).first()
