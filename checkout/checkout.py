"""Paying for a hold: begin payment (extend the hold), charge once, then commit or step back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from catalog.errors import DomainError, PaymentFailed
from checkout.holds import HoldStore
from checkout.payments import ChargeStatus, PaymentProvider


@dataclass(frozen=True)
class Receipt:
    hold_id: str
    qty: int
    unit_price: int
    amount: int
    currency: str
    payment_ref: str


def attempt_id(attempt_key: str) -> str:
    """The attempt's name inside the hold record, free of the record's separator."""
    return hashlib.sha256(attempt_key.encode()).hexdigest()[:24]


async def _refund_if_charged(provider: PaymentProvider, charge_key: str) -> None:
    charge = await provider.find(charge_key)
    if charge is not None and charge.status is ChargeStatus.APPROVED and not charge.refunded:
        await provider.refund(charge)


async def pay_for_hold(
    holds: HoldStore,
    provider: PaymentProvider,
    *,
    hold_id: str,
    buyer: str,
    card: str,
    attempt_key: str,
    shipping: str = "",
) -> Receipt:
    """Charge the buyer for the hold and mark it sold.

    ``attempt_key`` names this payment attempt at the provider, so a replay charges nothing new.
    Only one attempt may be paying for a hold at a time. A declined card returns the hold to its
    own deadline: it stays held until then or until the buyer releases it. If the hold
    lapsed while the charge was in flight, the charge is refunded and the error is raised.
    ``shipping`` (the address as JSON text, or empty) is committed with the sale, so the order
    the pipeline writes carries it.
    """
    attempt = attempt_id(attempt_key)
    charge_key = f"{hold_id}:{attempt_key}"
    try:
        terms = await holds.begin_payment(hold_id, buyer, attempt)
    except DomainError as err:
        if err.code in {"hold_expired", "hold_released", "deal_ended"}:
            # A retry of an attempt that charged and then died before committing (a crash, a
            # Redis blip): the hold is gone, so the money goes back.
            await _refund_if_charged(provider, charge_key)
        raise
    try:
        charge = await provider.charge(
            key=charge_key, amount=terms.amount, currency=terms.currency, card=card
        )
    except DomainError:
        await holds.payment_failed(hold_id, buyer, attempt)  # nothing was charged (an unknown card)
        raise
    if charge.status is not ChargeStatus.APPROVED:
        await holds.payment_failed(hold_id, buyer, attempt)
        message = (
            "The card was declined."
            if charge.status is ChargeStatus.DECLINED
            else "The card has insufficient funds."
        )
        raise PaymentFailed(message, code=charge.status.value, hold_id=hold_id)
    try:
        await holds.commit(hold_id, buyer, charge.id, attempt, shipping)
    except DomainError:
        await provider.refund(charge)
        raise
    return Receipt(
        hold_id=hold_id,
        qty=terms.qty,
        unit_price=terms.unit_price,
        amount=terms.amount,
        currency=terms.currency,
        payment_ref=charge.id,
    )
