"""Paying for a hold: begin payment (extend the hold), write the attempt down, charge once, then
commit or step back. Every step is idempotent per attempt, so a retry after a crash at any point
(or the reconciler, decision 0017) finishes what the dead request started."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from catalog.error_codes import CatalogErrorCode
from checkout.attempts import AttemptStatus, AttemptStore
from checkout.error_codes import CheckoutErrorCode
from checkout.faults import NO_CRASH, CrashPoints
from checkout.holds import HoldStore, PaymentTerms, hold_error
from checkout.models import PaymentAttempt
from checkout.payments import Charge, ChargeStatus, PaymentProvider, refund_whole
from checkout.shelf import Line
from kernel.clock import now_ms
from kernel.errors import Conflict, DomainError, PaymentFailed

# A hold that can no longer be paid for: a charge its attempt made must go back.
_HOLD_GONE = frozenset(
    {CheckoutErrorCode.HOLD_EXPIRED, CheckoutErrorCode.HOLD_RELEASED, CatalogErrorCode.DEAL_ENDED}
)
# What the buyer is told when the provider says no.
_DECLINES = {
    ChargeStatus.DECLINED: (CheckoutErrorCode.CARD_DECLINED, "The card was declined."),
    ChargeStatus.INSUFFICIENT_FUNDS: (
        CheckoutErrorCode.INSUFFICIENT_FUNDS,
        "The card has insufficient funds.",
    ),
}


@dataclass(frozen=True)
class Receipt:
    hold_id: str
    qty: int
    unit_price: int
    amount: int
    currency: str
    payment_ref: str
    lines: tuple[Line, ...] = ()  # a cart's hold: its lines


@dataclass(frozen=True)
class Till:
    """What taking a payment needs: the holds, the provider, the attempts' record, and the
    crash points the crash tests arm."""

    holds: HoldStore
    provider: PaymentProvider
    attempts: AttemptStore
    crash: CrashPoints = NO_CRASH


def attempt_id(attempt_key: str) -> str:
    """The attempt's name inside the hold record, free of the record's separator."""
    return hashlib.sha256(attempt_key.encode()).hexdigest()[:24]


def charge_key(hold_id: str, attempt_key: str) -> str:
    """The provider's idempotency key for one attempt at one hold."""
    return f"{hold_id}:{attempt_key}"


async def refund_if_charged(till: Till, key: str) -> bool:
    """Give back an approved charge made under ``key`` (once); True if one was ever made."""
    charge = await till.provider.find(key)
    if charge is None or charge.status is not ChargeStatus.APPROVED:
        return False
    outcome = AttemptStatus.REFUNDED
    if not charge.refunded:
        outcome = await give_back(till, charge)
    await till.attempts.settle(key, outcome, charge.id, only_pending=False)
    return True


async def give_back(till: Till, charge: Charge) -> AttemptStatus:
    """Return a charge that sold nothing: refunded; or, when the buyer has disputed it, left to
    the dispute (the provider refuses a refund while one is open, and the bank gives the money
    back): asking again on every pass would change nothing."""
    try:
        await refund_whole(till.provider, charge)
    except DomainError as refused:
        if refused.code != CheckoutErrorCode.ORDER_DISPUTED:
            raise
        return AttemptStatus.DISPUTED
    till.crash.reach("checkout.after_refund")
    return AttemptStatus.REFUNDED


def _receipt(terms: PaymentTerms, charge: Charge) -> Receipt:
    return Receipt(
        hold_id=terms.hold_id,
        qty=terms.qty,
        unit_price=terms.unit_price,
        amount=terms.amount,
        currency=terms.currency,
        payment_ref=charge.id,
        lines=terms.lines,
    )


async def _claim_free(
    till: Till, terms: PaymentTerms, buyer: str, attempt: str, shipping: str
) -> Receipt:
    """A hold that costs nothing (a giveaway's prize, decision 0032): the commit is the claim,
    and no provider is asked (a real one refuses a charge of 0). Its payment_ref names the
    attempt, so the order is still one per hold and a retry answers the same."""
    ref = f"free-{attempt}"
    if not terms.paid:
        await till.holds.commit(terms.hold_id, buyer, ref, attempt, shipping)
    return Receipt(
        hold_id=terms.hold_id,
        qty=terms.qty,
        unit_price=terms.unit_price,
        amount=0,
        currency=terms.currency,
        payment_ref=ref,
        lines=terms.lines,
    )


async def pay_with_card_on_file(
    till: Till, *, hold_id: str, buyer: str, attempt_key: str
) -> Receipt | None:
    """Pay the buyer's hold with the card they keep on file (an auction win, decision 0031);
    None when they keep none. Exactly ``pay_for_hold``: the same key never charges twice."""
    method = await till.provider.method_of(buyer)
    if method is None:
        return None
    return await pay_for_hold(
        till,
        hold_id=hold_id,
        buyer=buyer,
        card=method.id,
        attempt_key=attempt_key,
        shipping=method.shipping,
    )


async def pay_for_hold(
    till: Till,
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
    key = charge_key(hold_id, attempt_key)
    try:
        terms = await till.holds.begin_payment(hold_id, buyer, attempt)
    except DomainError as err:
        if err.code in _HOLD_GONE:
            # A retry of an attempt that charged and then died before committing, once the
            # hold is gone: the money goes back (if the reconciler has not done it already).
            await refund_if_charged(till, key)
        raise
    if terms.amount == 0:
        return await _claim_free(till, terms, buyer, attempt, shipping)
    if terms.paid:  # this attempt sold the hold before its request died
        charge = await till.provider.find(key)
        if charge is None or charge.refunded:
            raise hold_error(CheckoutErrorCode.HOLD_ALREADY_PAID, hold_id)
        # The dead request may not have written its outcome; its key is this request's now, so
        # the reconciler will not (it never settles under a key a request has finished).
        await till.attempts.settle(key, AttemptStatus.COMMITTED, charge.id, only_pending=True)
        return _receipt(terms, charge)
    now = now_ms()
    await till.attempts.record(
        PaymentAttempt(
            charge_key=key,
            keyspace=till.attempts.keyspace,
            hold_id=hold_id,
            buyer_id=buyer,
            attempt=attempt,
            amount=terms.amount,
            currency=terms.currency,
            shipping=shipping,
            status=AttemptStatus.PENDING.value,
            created_ms=now,
            updated_ms=now,
        )
    )
    till.crash.reach("checkout.before_charge")
    try:
        charge = await till.provider.charge(
            key=key, amount=terms.amount, currency=terms.currency, card=card
        )
    except DomainError:
        # Nothing was charged (an unknown card).
        await till.holds.payment_failed(hold_id, buyer, attempt)
        await till.attempts.settle(key, AttemptStatus.VOID, only_pending=False)
        raise
    till.crash.reach("checkout.after_charge")
    if charge.refunded:
        # This key's charge was made before and given back (its hold had moved on): it can
        # never pay for a sale again, or the buyer would have the goods and the money.
        await till.holds.payment_failed(hold_id, buyer, attempt)
        await till.attempts.settle(key, AttemptStatus.REFUNDED, charge.id, only_pending=False)
        raise Conflict(
            "This payment was refunded; pay again with a new Idempotency-Key.",
            code=CheckoutErrorCode.PAYMENT_REFUNDED,
            hold_id=hold_id,
        )
    if charge.status is not ChargeStatus.APPROVED:
        await till.holds.payment_failed(hold_id, buyer, attempt)
        await till.attempts.settle(key, AttemptStatus.DECLINED, charge.id, only_pending=False)
        code, message = _DECLINES[charge.status]
        raise PaymentFailed(message, code=code, hold_id=hold_id)
    try:
        await till.holds.commit(hold_id, buyer, charge.id, attempt, shipping)
    except DomainError:
        await refund_if_charged(till, key)
        raise
    till.crash.reach("checkout.after_commit")
    await till.attempts.settle(key, AttemptStatus.COMMITTED, charge.id, only_pending=False)
    till.crash.reach("checkout.after_outcome")
    return _receipt(terms, charge)
