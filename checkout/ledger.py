"""The double-entry ledger's transactions, built by one function per recipe (decision 0027).
Pure: no I/O. ``checkout.ledger_store`` writes them in the caller's SQL transaction.

An amount is signed minor units: positive a debit, negative a credit. Every transaction's lines
sum to zero per currency, so the whole ledger does. A shop's balances are what the platform owes
it: the negated sums of its accounts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Account(enum.StrEnum):
    # A shop's (each line names the shop).
    PENDING = "shop:pending"  # earned, not yet withdrawable
    AVAILABLE = "shop:available"  # withdrawable; may go below zero after a refund
    PAID_OUT = "shop:paid_out"  # everything withdrawn
    # The platform's.
    PROVIDER = "platform:provider"  # money the payment provider holds for the platform
    FEES = "platform:fees"  # fees earned, net of fees given back
    REFUNDS = "platform:refunds"  # refunds granted, not yet confirmed (0 when none in flight)
    CHARGEBACKS = "platform:chargebacks"  # taken back for open disputes (0 when none)
    PAYOUTS = "platform:payouts"  # money sent to sellers' banks
    # Creators' commissions earned on delivered orders (decision 0046), less those given back:
    # taken from the selling shop, held for the creators its attributions name until the order
    # settles, then paid into the creator's shop (decision 0054). Its lines name the shop whose
    # money moved: the selling shop's for what the order owes, the creator's for what was paid.
    COMMISSIONS = "platform:commissions"


SHOP_ACCOUNTS = (Account.PENDING, Account.AVAILABLE, Account.PAID_OUT)


@dataclass(frozen=True)
class Line:
    account: Account
    amount: int


@dataclass(frozen=True)
class Transaction:
    txn: str  # deterministic ("sale:41"): posting it twice breaks a unique key
    reference: str  # the business object it belongs to ("order:41", "payout:3")
    shop_id: int
    currency: str
    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        if sum(line.amount for line in self.lines) != 0:
            raise ValueError(f"unbalanced ledger transaction {self.txn}: {self.lines}")


def _txn(txn: str, reference: str, shop_id: int, currency: str, *lines: Line) -> Transaction:
    # Zero lines are left out (the table refuses them): a sale with no fee has two lines.
    return Transaction(
        txn, reference, shop_id, currency, tuple(line for line in lines if line.amount)
    )


def then(txn: str, step: str) -> str:
    """The name of a transaction that follows ``txn`` ("refund:12" then "succeeded")."""
    return f"{txn}:{step}"


def fee(amount: int, fee_bps: int) -> int:
    """The platform's fee on ``amount``, rounded down: in the seller's favour."""
    return amount * fee_bps // 10_000


def sale(order_id: int, shop_id: int, currency: str, total: int, fee_bps: int) -> Transaction:
    """The buyer paid ``total``: the provider holds it, the shop is owed it less the fee."""
    f = fee(total, fee_bps)
    return _txn(
        f"sale:{order_id}",
        f"order:{order_id}",
        shop_id,
        currency,
        Line(Account.PROVIDER, total),
        Line(Account.PENDING, -total),
        Line(Account.PENDING, f),
        Line(Account.FEES, -f),
    )


def fee_returned(fee_held: int, total: int, fee_bps: int, refunded_after: int) -> int:
    """The fee given back with a refund: the platform keeps the fee only on what the buyer kept
    (``fee_held`` is what the order's entries hold now), so a fully refunded order leaves the
    platform nothing, and rounding never drifts across several refunds."""
    return fee_held - fee(total - refunded_after, fee_bps)


def commission(amount: int, rate_bp: int) -> int:
    """A creator's commission on ``amount``, rounded down (as the fee is)."""
    return amount * rate_bp // 10_000


def commission_moved(
    txn: str, order_id: int, shop_id: int, currency: str, amount: int, shop_account: Account
) -> Transaction:
    """The shop owes the creator ``amount`` more (earned on delivery), or less when negative
    (given back with a refund): the shop's balance pays it into the creators' account."""
    return _txn(
        txn,
        f"order:{order_id}",
        shop_id,
        currency,
        Line(shop_account, amount),
        Line(Account.COMMISSIONS, -amount),
    )


def commission_paid(
    txn: str, order_id: int, creator_shop_id: int, currency: str, amount: int
) -> Transaction:
    """``amount`` of the order's commission leaves the creators' account for the shop of the
    creator's room, withdrawable there (decision 0054); negative, it is taken back from it."""
    return _txn(
        txn,
        f"order:{order_id}",
        creator_shop_id,
        currency,
        Line(Account.COMMISSIONS, amount),
        Line(Account.AVAILABLE, -amount),
    )


def refund_granted(
    refund_id: int,
    order_id: int,
    shop_id: int,
    currency: str,
    amount: int,
    fee_back: int,
    shop_account: Account,
) -> Transaction:
    return _txn(
        f"refund:{refund_id}",
        f"order:{order_id}",
        shop_id,
        currency,
        Line(shop_account, amount),
        Line(shop_account, -fee_back),
        Line(Account.FEES, fee_back),
        Line(Account.REFUNDS, -amount),
    )


def refund_succeeded(
    refund_id: int, order_id: int, shop_id: int, currency: str, amount: int
) -> Transaction:
    return _txn(
        then(f"refund:{refund_id}", "succeeded"),
        f"order:{order_id}",
        shop_id,
        currency,
        Line(Account.REFUNDS, amount),
        Line(Account.PROVIDER, -amount),
    )


def refund_failed(granted: Transaction) -> Transaction:
    """The grant, reversed: the provider refused, so nothing was given back."""
    return Transaction(
        then(granted.txn, "failed"),
        granted.reference,
        granted.shop_id,
        granted.currency,
        tuple(Line(line.account, -line.amount) for line in granted.lines),
    )


def settlement(order_id: int, shop_id: int, currency: str, net: int) -> Transaction:
    return _txn(
        f"settle:{order_id}",
        f"order:{order_id}",
        shop_id,
        currency,
        Line(Account.PENDING, net),
        Line(Account.AVAILABLE, -net),
    )


def withdrawal(payout_id: int, shop_id: int, currency: str, amount: int) -> Transaction:
    return _txn(
        f"payout:{payout_id}",
        f"payout:{payout_id}",
        shop_id,
        currency,
        Line(Account.AVAILABLE, amount),
        Line(Account.PAID_OUT, -amount),
    )


def payout_paid(payout_id: int, shop_id: int, currency: str, amount: int) -> Transaction:
    return _txn(
        then(f"payout:{payout_id}", "paid"),
        f"payout:{payout_id}",
        shop_id,
        currency,
        Line(Account.PROVIDER, -amount),
        Line(Account.PAYOUTS, amount),
    )


def payout_failed(payout_id: int, shop_id: int, currency: str, amount: int) -> Transaction:
    return _txn(
        then(f"payout:{payout_id}", "failed"),
        f"payout:{payout_id}",
        shop_id,
        currency,
        Line(Account.PAID_OUT, amount),
        Line(Account.AVAILABLE, -amount),
    )


def dispute_opened(
    dispute_id: int, order_id: int, shop_id: int, currency: str, amount: int
) -> Transaction:
    """The buyer's bank took ``amount`` back: the provider holds that much less, held against the
    dispute until it closes. The shop's balances stay (the order neither settles nor pays out
    the amount meanwhile)."""
    return _txn(
        then(f"dispute:{dispute_id}", "opened"),
        f"order:{order_id}",
        shop_id,
        currency,
        Line(Account.CHARGEBACKS, amount),
        Line(Account.PROVIDER, -amount),
    )


def dispute_won(
    dispute_id: int, order_id: int, shop_id: int, currency: str, amount: int
) -> Transaction:
    """The money came back: the opening, reversed."""
    return _txn(
        then(f"dispute:{dispute_id}", "won"),
        f"order:{order_id}",
        shop_id,
        currency,
        Line(Account.CHARGEBACKS, -amount),
        Line(Account.PROVIDER, amount),
    )


def dispute_lost(
    dispute_id: int,
    order_id: int,
    shop_id: int,
    currency: str,
    amount: int,
    fee_back: int,
    shop_account: Account,
) -> Transaction:
    """The bank kept it: the shop bears the amount, less the fee on it, which it gets back
    (``fee_returned``, as with a refund)."""
    return _txn(
        then(f"dispute:{dispute_id}", "lost"),
        f"order:{order_id}",
        shop_id,
        currency,
        Line(shop_account, amount),
        Line(shop_account, -fee_back),
        Line(Account.FEES, fee_back),
        Line(Account.CHARGEBACKS, -amount),
    )
