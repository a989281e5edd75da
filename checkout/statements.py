"""A shop's finance as the seller reads it (decision 0027, docs/money.md "Finance in the seller
center"): earnings per currency, and a statement for a period with every entry of the shop's
accounts and each account's opening and closing balance, also as CSV. Pure: no I/O;
``checkout.finance_store`` reads the entries.

Amounts are what the platform owes the shop, as the seller center shows balances: an entry's
amount negated (positive a credit to the shop), so opening + the period's lines = closing.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from checkout.ledger import SHOP_ACCOUNTS, Account

# The CSV export: when (ISO 8601, UTC), the transaction and account, the amount in minor units
# and as a decimal, its currency, and the business object it belongs to.
CSV_COLUMNS = (
    "created_at",
    "txn",
    "account",
    "amount_minor",
    "amount",
    "currency",
    "reference",
)


@dataclass(frozen=True)
class Earnings:
    """One currency's balances, as owed to the shop."""

    currency: str
    pending: int  # earned, not yet withdrawable
    available: int  # withdrawable; below zero after a refund of settled money
    paid_out: int  # everything withdrawn so far

    @property
    def withdrawable(self) -> int:
        """What a withdrawal would take now: the available balance, or nothing below zero."""
        return max(self.available, 0)


def earnings(balances: Mapping[tuple[Account, str], int]) -> list[Earnings]:
    """Per currency (alphabetical), from ``ledger_store.balances``."""
    currencies = sorted({currency for _, currency in balances})
    return [
        Earnings(
            currency,
            pending=balances.get((Account.PENDING, currency), 0),
            available=balances.get((Account.AVAILABLE, currency), 0),
            paid_out=balances.get((Account.PAID_OUT, currency), 0),
        )
        for currency in currencies
    ]


@dataclass(frozen=True)
class StatementLine:
    """One ledger entry of one of the shop's accounts."""

    id: int
    created_ms: int
    txn: str
    account: Account
    amount: int  # owed to the shop: the entry's amount negated
    currency: str
    reference: str


@dataclass(frozen=True)
class Balance:
    account: Account
    currency: str
    opening: int  # owed to the shop at the period's start
    closing: int  # at its end: opening plus the period's lines

    @property
    def change(self) -> int:
        return self.closing - self.opening


@dataclass(frozen=True)
class Statement:
    shop_id: int
    from_ms: int  # inclusive
    to_ms: int  # exclusive
    balances: tuple[Balance, ...]
    lines: tuple[StatementLine, ...]  # oldest first


def build_statement(
    shop_id: int,
    from_ms: int,
    to_ms: int,
    opening: Mapping[tuple[Account, str], int],
    lines: Iterable[StatementLine],
) -> Statement:
    """The statement from the balances before ``from_ms`` and the period's lines. Every
    currency with a balance or a line gets all three accounts, so a statement always says what
    was pending, available and paid out, zeros included."""
    ordered = tuple(sorted(lines, key=lambda line: (line.created_ms, line.id)))
    for line in ordered:
        if not from_ms <= line.created_ms < to_ms:
            raise ValueError(f"entry {line.id} at {line.created_ms} is outside the period")
    closing = dict(opening)
    for line in ordered:
        key = (line.account, line.currency)
        closing[key] = closing.get(key, 0) + line.amount
    currencies = sorted({currency for _, currency in closing})
    balances = tuple(
        Balance(
            account,
            currency,
            opening.get((account, currency), 0),
            closing.get((account, currency), 0),
        )
        for currency in currencies
        for account in SHOP_ACCOUNTS  # pending, available, paid out: the order money moves in
    )
    return Statement(shop_id, from_ms, to_ms, balances, ordered)


def iso_utc(ms: int) -> str:
    """``2026-12-02T11:43:05.123Z``: an epoch-millisecond instant as a spreadsheet reads it."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def decimal_amount(amount: int, digits: int) -> str:
    """Minor units as a plain decimal in major units (``-12.50``, ``1200`` in yen): no symbol or
    grouping, so a spreadsheet reads it as a number."""
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}"


def statement_csv(lines: Sequence[StatementLine], minor_digits: Callable[[str], int]) -> str:
    """The statement's lines as CSV (``CSV_COLUMNS``), oldest first. ``minor_digits``: each
    currency's number of minor-unit digits (2 for USD, 0 for JPY)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        writer.writerow(
            (
                iso_utc(line.created_ms),
                line.txn,
                line.account.value,
                line.amount,
                decimal_amount(line.amount, minor_digits(line.currency)),
                line.currency,
                line.reference,
            )
        )
    return out.getvalue()
