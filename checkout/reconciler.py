"""Settle payment attempts whose outcome nobody learned (decision 0017): their request died
between writing the attempt down and writing its outcome. The provider is asked by the attempt's
key, and the table in the decision says what follows. Runs on startup and on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from checkout.attempts import AttemptStatus
from checkout.checkout import Till, give_back
from checkout.idempotency import IdempotencyStore
from checkout.models import PaymentAttempt
from checkout.payments import ChargeStatus
from kernel.clock import now_ms
from kernel.errors import DomainError

log = logging.getLogger("livecart.reconciler")


async def settle_attempt(till: Till, attempt: PaymentAttempt) -> AttemptStatus:
    charge = await till.provider.find(attempt.charge_key)
    hold, buyer = attempt.hold_id, attempt.buyer_id
    if charge is None or charge.status is not ChargeStatus.APPROVED:
        # No money moved: the hold goes back to its own deadline if this attempt still pays it.
        await till.holds.payment_failed(hold, buyer, attempt.attempt)
        outcome = AttemptStatus.VOID if charge is None else AttemptStatus.DECLINED
    elif charge.refunded:
        outcome = AttemptStatus.REFUNDED
    else:
        try:
            await till.holds.commit(hold, buyer, charge.id, attempt.attempt, attempt.shipping)
            outcome = AttemptStatus.COMMITTED
        except DomainError as err:  # the hold lapsed, was released, or another attempt sold it
            log.info("refunding %s: its hold is %s", attempt.charge_key, err.code)
            outcome = await give_back(till, charge)
    ref = charge.id if charge is not None else ""
    await till.attempts.settle(attempt.charge_key, outcome, ref, only_pending=True)
    return outcome


async def reconcile_once(
    till: Till, idempotency: IdempotencyStore, lease_ms: int
) -> Counter[AttemptStatus]:
    """Settle every pending attempt older than one lease whose request is not running."""
    settled: Counter[AttemptStatus] = Counter()
    for attempt in await till.attempts.pending(updated_before_ms=now_ms() - lease_ms):
        _, _, key = attempt.charge_key.partition(":")
        # Hold the attempt's key while settling: a retry starting between the provider's answer
        # and the hold's update would otherwise act on a state that is about to change.
        claim = await idempotency.claim_for_settling(attempt.buyer_id, key)
        if claim is None:
            continue  # its checkout (or the buyer's retry) is running
        try:
            async with idempotency.held(claim):
                current = await till.attempts.get(attempt.charge_key)
                if current is None or current.status != AttemptStatus.PENDING:
                    continue  # settled by its request just before we took the key
                outcome = await settle_attempt(till, current)
        except Exception:  # one attempt's failure must not starve the others
            log.exception("could not settle payment attempt %s", attempt.charge_key)
            continue
        finally:
            await idempotency.abandon(claim)
        log.warning("settled payment attempt %s: %s", attempt.charge_key, outcome.value)
        settled[outcome] += 1
    return settled


async def reconcile_forever(
    till: Till, idempotency: IdempotencyStore, lease_ms: int, interval_s: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await reconcile_once(till, idempotency, lease_ms)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciling payment attempts failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
