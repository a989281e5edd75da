"""The finance helpers of checkout/statements.py, pure: earnings per currency, a statement's
opening and closing balances from its lines, and its CSV (decision 0027, docs/money.md
"Finance in the seller center")."""

from __future__ import annotations

import csv
import io

import pytest

from checkout.ledger import Account
from checkout.statements import (
    CSV_COLUMNS,
    Balance,
    Earnings,
    StatementLine,
    build_statement,
    decimal_amount,
    earnings,
    iso_utc,
    statement_csv,
)

DIGITS = {"USD": 2, "JPY": 0, "KWD": 3}


def line(
    n: int, at: int, account: Account, amount: int, currency: str = "USD", txn: str = ""
) -> StatementLine:
    return StatementLine(n, at, txn or f"sale:{n}", account, amount, currency, f"order:{n}")


def test_earnings_are_per_currency_and_withdrawable_is_never_below_zero() -> None:
    found = earnings(
        {
            (Account.PENDING, "USD"): 9310,
            (Account.AVAILABLE, "USD"): 500,
            (Account.PAID_OUT, "USD"): 1000,
            (Account.AVAILABLE, "JPY"): -300,  # a refund of settled money
        }
    )
    assert found == [
        Earnings("JPY", pending=0, available=-300, paid_out=0),
        Earnings("USD", pending=9310, available=500, paid_out=1000),
    ]
    assert [e.withdrawable for e in found] == [0, 500]
    assert earnings({}) == []


def test_closing_is_opening_plus_the_lines_for_every_account_of_every_currency() -> None:
    opening = {(Account.PENDING, "USD"): 1000, (Account.PAID_OUT, "JPY"): 50}
    lines = [
        line(3, 300, Account.PENDING, -1000, txn="settle:1"),
        line(4, 300, Account.AVAILABLE, 1000, txn="settle:1"),
        line(2, 200, Account.PENDING, 9800),
        line(5, 200, Account.PENDING, -490),
    ]
    statement = build_statement(7, 100, 400, opening, lines)
    # Oldest first; entries written in the same millisecond by their id.
    assert [ln.id for ln in statement.lines] == [2, 5, 3, 4]
    assert statement.balances == (
        Balance(Account.PENDING, "JPY", 0, 0),
        Balance(Account.AVAILABLE, "JPY", 0, 0),
        Balance(Account.PAID_OUT, "JPY", 50, 50),
        Balance(Account.PENDING, "USD", 1000, 1000 + 9800 - 490 - 1000),
        Balance(Account.AVAILABLE, "USD", 0, 1000),
        Balance(Account.PAID_OUT, "USD", 0, 0),
    )
    assert sum(b.change for b in statement.balances) == sum(ln.amount for ln in lines)


def test_an_empty_period_with_nothing_before_has_no_balances() -> None:
    statement = build_statement(7, 0, 1000, {}, [])
    assert (statement.balances, statement.lines) == ((), ())


def test_a_line_outside_the_period_is_refused() -> None:
    with pytest.raises(ValueError):
        build_statement(7, 100, 200, {}, [line(1, 200, Account.PENDING, 5)])  # to is exclusive
    with pytest.raises(ValueError):
        build_statement(7, 100, 200, {}, [line(1, 99, Account.PENDING, 5)])


@pytest.mark.parametrize(
    ("amount", "digits", "text"),
    [
        (9310, 2, "93.10"),
        (-490, 2, "-4.90"),
        (5, 2, "0.05"),
        (-5, 2, "-0.05"),
        (0, 2, "0.00"),
        (1200, 0, "1200"),
        (-1200, 0, "-1200"),
        (1234, 3, "1.234"),
    ],
)
def test_decimal_amounts_are_plain_numbers(amount: int, digits: int, text: str) -> None:
    assert decimal_amount(amount, digits) == text


def test_instants_are_iso_utc_to_the_millisecond() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_764_676_985_007) == "2025-12-02T12:03:05.007Z"


def test_the_csv_has_a_header_and_one_row_per_line_oldest_first() -> None:
    lines = [
        line(1, 1_764_676_985_007, Account.PENDING, 9800),
        line(2, 1_764_676_985_007, Account.PENDING, -490),
        line(3, 1_764_677_000_000, Account.AVAILABLE, 1200, currency="JPY", txn="settle:3"),
    ]
    text = statement_csv(lines, DIGITS.__getitem__)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [
        ["2025-12-02T12:03:05.007Z", "sale:1", "shop:pending", "9800", "98.00", "USD", "order:1"],
        ["2025-12-02T12:03:05.007Z", "sale:2", "shop:pending", "-490", "-4.90", "USD", "order:2"],
        [
            "2025-12-02T12:03:20.000Z",
            "settle:3",
            "shop:available",
            "1200",
            "1200",
            "JPY",
            "order:3",
        ],
    ]
    assert text.endswith("\r\n")  # RFC 4180 line ends
    assert statement_csv([], DIGITS.__getitem__) == ",".join(CSV_COLUMNS) + "\r\n"
