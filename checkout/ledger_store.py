"""The ledger in SQL: ``post`` writes a transaction's lines into the caller's open SQL
transaction, so an entry is committed with the state change it follows or not at all. Balances
are sums of entries; none is stored (decision 0027)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from checkout.ledger import Account, Transaction
from checkout.models import LedgerEntry
from kernel.clock import now_ms


async def post(conn: AsyncConnection, txn: Transaction, at_ms: int | None = None) -> None:
    """Insert ``txn`` in the open transaction. Posting the same ``txn`` twice violates the
    unique (txn, line) key, and the caller's whole change rolls back with it."""
    if not txn.lines:
        return
    at = now_ms() if at_ms is None else at_ms
    await conn.execute(
        insert(LedgerEntry),
        [
            {
                "txn": txn.txn,
                "line": n,
                "account": line.account.value,
                "shop_id": txn.shop_id,
                "amount": line.amount,
                "currency": txn.currency,
                "created_ms": at,
                "reference": txn.reference,
            }
            for n, line in enumerate(txn.lines)
        ],
    )


async def order_sum(
    conn: AsyncConnection, order_id: int, account: Account, shop_id: int | None = None
) -> int:
    """The sum of one order's entries in ``account`` (of those naming ``shop_id``, if given)."""
    query = core_select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
        col(LedgerEntry.reference) == f"order:{order_id}",
        col(LedgerEntry.account) == account.value,
    )
    if shop_id is not None:
        query = query.where(col(LedgerEntry.shop_id) == shop_id)
    return int((await conn.execute(query)).scalar_one())


async def balances(
    conn: AsyncConnection, shop_id: int, until_ms: int | None = None
) -> dict[tuple[Account, str], int]:
    """What the platform owes the shop in each of its accounts and currencies (the negated
    sums), as of ``until_ms`` (exclusive) or now."""
    query = (
        core_select(
            col(LedgerEntry.account),
            col(LedgerEntry.currency),
            func.sum(col(LedgerEntry.amount)),
        )
        .where(
            col(LedgerEntry.shop_id) == shop_id,
            col(LedgerEntry.account).in_(
                [a.value for a in (Account.PENDING, Account.AVAILABLE, Account.PAID_OUT)]
            ),
        )
        .group_by(col(LedgerEntry.account), col(LedgerEntry.currency))
    )
    if until_ms is not None:
        query = query.where(col(LedgerEntry.created_ms) < until_ms)
    rows = (await conn.execute(query)).all()
    return {(Account(account), currency): -int(total) for account, currency, total in rows}


async def entries_of(conn: AsyncConnection, reference: str) -> Sequence[LedgerEntry]:
    query = (
        core_select(LedgerEntry)
        .where(col(LedgerEntry.reference) == reference)
        .order_by(col(LedgerEntry.id))
    )
    return [LedgerEntry.model_validate(row._mapping) for row in (await conn.execute(query)).all()]
