"""Paying for a hold, at the function level, with the sandbox provider's ledger in Redis."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from catalog.db import Database
from catalog.errors import Conflict
from checkout.checkout import attempt_id, pay_for_hold
from checkout.holds import HoldStore, ReserveRequest
from checkout.idempotency import Claim, IdempotencyStore
from checkout.keys import Keyspace
from checkout.payments import ChargeStatus, SandboxProvider
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal

pytestmark = pytest.mark.storage

CARD = "4242424242424242"


async def test_a_charge_orphaned_by_a_crash_is_refunded_on_retry(
    db: Database,
    private_holds: HoldStore,
    private_keys: Keyspace,
    redis: Redis,
    seller: SellerAccount,
) -> None:
    deal = await make_live_deal(
        db, private_holds, seller, quantity=3, hold_ttl_ms=150, pay_ttl_ms=300
    )
    provider = SandboxProvider(redis, private_keys.sandbox_charges)
    me, key = secrets.token_hex(6), "pay-" + secrets.token_hex(4)
    hold = await private_holds.reserve(deal.id or 0, ReserveRequest(me, 1))
    # The first attempt charges and the process dies before it commits.
    terms = await private_holds.begin_payment(hold.id, me, attempt_id(key))
    charge = await provider.charge(
        key=f"{hold.id}:{key}", amount=terms.amount, currency=terms.currency, card=CARD
    )
    assert charge.status is ChargeStatus.APPROVED
    await asyncio.sleep(0.4)  # past the payment window: the hold lapses, its unit goes back
    with pytest.raises(Conflict) as caught:
        await pay_for_hold(
            private_holds, provider, hold_id=hold.id, buyer=me, card=CARD, attempt_key=key
        )
    assert caught.value.code == "hold_expired"
    after = await provider.find(f"{hold.id}:{key}")
    assert after is not None and after.id == charge.id and after.refunded


async def test_a_retry_after_a_crash_inside_the_window_completes_with_one_charge(
    db: Database,
    private_holds: HoldStore,
    private_keys: Keyspace,
    redis: Redis,
    seller: SellerAccount,
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=3)
    provider = SandboxProvider(redis, private_keys.sandbox_charges)
    me, key = secrets.token_hex(6), "pay-" + secrets.token_hex(4)
    hold = await private_holds.reserve(deal.id or 0, ReserveRequest(me, 1))
    terms = await private_holds.begin_payment(hold.id, me, attempt_id(key))
    first = await provider.charge(
        key=f"{hold.id}:{key}", amount=terms.amount, currency=terms.currency, card=CARD
    )
    receipt = await pay_for_hold(
        private_holds, provider, hold_id=hold.id, buyer=me, card=CARD, attempt_key=key
    )
    assert receipt.payment_ref == first.id  # the same charge, not a second one
    assert (await private_holds.get_hold(hold.id, me)).state == "sold"
    charges = [c for c in await provider.charges() if c.key.startswith(f"{hold.id}:")]
    assert [(c.id, c.refunded) for c in charges] == [(first.id, False)]


async def test_a_failed_request_never_removes_a_newer_claim_on_its_key(
    redis: Redis, private_keys: Keyspace
) -> None:
    store = IdempotencyStore(redis, private_keys, pending_ttl_s=1)
    key = "k-" + secrets.token_hex(4)
    slow = await store.begin("buyer", key, "digest")
    assert isinstance(slow, Claim)
    await asyncio.sleep(1.1)  # the slow request outlived its marker
    fresh = await store.begin("buyer", key, "digest")
    assert isinstance(fresh, Claim)
    await store.abandon(slow)  # the slow one fails late
    with pytest.raises(Conflict) as caught:
        await store.begin("buyer", key, "digest")
    assert caught.value.code == "request_in_progress"  # the fresh claim still stands
    await store.abandon(fresh)
    assert isinstance(await store.begin("buyer", key, "digest"), Claim)
