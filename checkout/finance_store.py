"""A shop's finance read from the ledger (decision 0027): earnings, statements, and the day's
sales net of refunds. Every figure is a sum of entries; nothing here writes.
``checkout.statements`` shapes what these read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from checkout import ledger_store, statements
from checkout.ledger import SHOP_ACCOUNTS, Account
from checkout.models import LedgerEntry
from checkout.statements import Earnings, Statement, StatementLine

SHOP_ACCOUNT_NAMES = [account.value for account in SHOP_ACCOUNTS]


async def earnings(conn: AsyncConnection, shop_id: int) -> list[Earnings]:
    return statements.earnings(await ledger_store.balances(conn, shop_id))


async def statement(conn: AsyncConnection, shop_id: int, from_ms: int, to_ms: int) -> Statement:
    """Every entry of the shop's accounts with ``from_ms <= created_ms < to_ms``, oldest first,
    and each account's balance before and after. The closing balances are the opening ones
    plus the lines (``statements.build_statement``), not a second read, so the statement adds
    up even while entries are being written."""
    opening = await ledger_store.balances(conn, shop_id, until_ms=from_ms)
    query = (
        core_select(LedgerEntry)
        .where(
            col(LedgerEntry.shop_id) == shop_id,
            col(LedgerEntry.account).in_(SHOP_ACCOUNT_NAMES),
            col(LedgerEntry.created_ms) >= from_ms,
            col(LedgerEntry.created_ms) < to_ms,
        )
        .order_by(col(LedgerEntry.created_ms), col(LedgerEntry.id))
    )
    lines = [
        StatementLine(
            id=row.id,
            created_ms=row.created_ms,
            txn=row.txn,
            account=Account(row.account),
            amount=-row.amount,  # owed to the shop, as balances are shown
            currency=row.currency,
            reference=row.reference,
        )
        for row in (await conn.execute(query)).all()
    ]
    return statements.build_statement(shop_id, from_ms, to_ms, opening, lines)


@dataclass(frozen=True)
class NetSales:
    currency: str
    gross: int  # what buyers paid for the orders written since then
    refunded: int  # refunds granted since then (of any order), less those the provider refused

    @property
    def net(self) -> int:
        return self.gross - self.refunded


async def net_sales_since(
    conn: AsyncConnection, shop_ids: Sequence[int], since_ms: int
) -> dict[str, NetSales]:
    """Sales since ``since_ms`` less the refunds granted since then, per currency, from the
    entries: a ``sale:<order>`` transaction's ``platform:provider`` line is what the buyer paid;
    a ``refund:<id>`` grant's ``platform:refunds`` line is the refund (negative), and the grant's
    reversal ``refund:<id>:failed`` adds it back. ``refund:<id>:succeeded`` only confirms a
    grant already counted, so it is left out."""
    if not shop_ids:
        return {}
    sale = (col(LedgerEntry.account) == Account.PROVIDER.value) & col(LedgerEntry.txn).like(
        "sale:%"
    )
    refund = (
        (col(LedgerEntry.account) == Account.REFUNDS.value)
        & col(LedgerEntry.txn).like("refund:%")
        & ~col(LedgerEntry.txn).like("%:succeeded")
    )
    query = (
        core_select(
            col(LedgerEntry.currency),
            func.coalesce(func.sum(col(LedgerEntry.amount)).filter(sale), 0),
            func.coalesce(func.sum(col(LedgerEntry.amount)).filter(refund), 0),
        )
        .where(
            col(LedgerEntry.shop_id).in_(shop_ids),
            col(LedgerEntry.created_ms) >= since_ms,
            or_(sale, refund),
        )
        .group_by(col(LedgerEntry.currency))
    )
    found = {}
    for currency, gross, refund_lines in (await conn.execute(query)).all():
        found[currency] = NetSales(currency, int(gross), -int(refund_lines))
    return found
