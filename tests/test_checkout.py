"""Paying for a hold, at the function level, with the sandbox provider's ledger in Redis; and
settling what a crash left behind (decision 0017). A crash here is ``Crashed`` raised at a
crash point: the test stops the checkout exactly where SIGKILL would (tests/test_crash_points.py
kills real processes)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest
from redis.asyncio import Redis

from checkout import idempotency
from checkout.attempts import AttemptStatus, AttemptStore
from checkout.checkout import Till, attempt_id, charge_key, pay_for_hold
from checkout.holds import HoldStore, ReserveRequest
from checkout.idempotency import Claim, IdempotencyStore, StoredResponse
from checkout.keys import Keyspace
from checkout.payments import ChargeStatus, SandboxProvider, refund_whole
from checkout.reconciler import reconcile_once
from kernel.db import Database
from kernel.errors import Conflict
from tests.conftest import SellerAccount
from tests.helpers import CrashAt, Crashed, make_live_deal, until
from tests.stores import Stores
from web.settings import Settings

pytestmark = pytest.mark.storage

CARD = "4242424242424242"
LEASE_MS = Settings().checkout_lease_ms  # a checkout's claim on its Idempotency-Key
DECLINED = "4000000000000002"
DISPUTE_CARD = "4000000000000259"


@pytest.fixture
def till(db: Database, private_holds: HoldStore, private_keys: Keyspace, redis: Redis) -> Till:
    provider = SandboxProvider(redis, private_keys.sandbox)
    return Till(private_holds, provider, AttemptStore(db, private_keys.prefix))


async def test_a_charge_orphaned_by_a_crash_is_refunded_on_retry(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=3, hold_ttl_ms=150, pay_ttl_ms=300)
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    me, key = secrets.token_hex(6), "pay-" + secrets.token_hex(4)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(me, 1))
    # The first attempt charges and the process dies before it commits.
    terms = await stores.holds.begin_payment(hold.id, me, attempt_id(key))
    charge = await provider.charge(
        key=f"{hold.id}:{key}", amount=terms.amount, currency=terms.currency, card=CARD
    )
    assert charge.status is ChargeStatus.APPROVED
    await asyncio.sleep(0.4)  # past the payment window: the hold lapses, its unit goes back
    till = Till(stores.holds, provider, AttemptStore(stores.db, stores.keys.prefix))
    with pytest.raises(Conflict) as caught:
        await pay_for_hold(till, hold_id=hold.id, buyer=me, card=CARD, attempt_key=key)
    assert caught.value.code == "hold_expired"
    after = await provider.find(f"{hold.id}:{key}")
    assert after is not None and after.id == charge.id and after.refunded


async def test_a_retry_after_a_crash_inside_the_window_completes_with_one_charge(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=3)
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    me, key = secrets.token_hex(6), "pay-" + secrets.token_hex(4)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(me, 1))
    terms = await stores.holds.begin_payment(hold.id, me, attempt_id(key))
    first = await provider.charge(
        key=f"{hold.id}:{key}", amount=terms.amount, currency=terms.currency, card=CARD
    )
    till = Till(stores.holds, provider, AttemptStore(stores.db, stores.keys.prefix))
    receipt = await pay_for_hold(till, hold_id=hold.id, buyer=me, card=CARD, attempt_key=key)
    assert receipt.payment_ref == first.id  # the same charge, not a second one
    assert (await stores.holds.get_hold(hold.id, me)).state == "sold"
    charges = [c for c in await provider.charges() if c.key.startswith(f"{hold.id}:")]
    assert [(c.id, c.refunded) for c in charges] == [(first.id, False)]


async def test_a_failed_request_never_removes_a_newer_claim_on_its_key(
    redis: Redis, private_keys: Keyspace
) -> None:
    store = IdempotencyStore(redis, private_keys, lease_ms=1000)
    key = "k-" + secrets.token_hex(4)
    slow = await store.begin("buyer", key, "digest")
    assert isinstance(slow, Claim)

    async def outlived() -> bool:  # the slow request outlived its marker
        return not await redis.exists(slow.redis_key)

    await until(outlived, "the slow request's marker lapses")
    fresh = await store.begin("buyer", key, "digest")
    assert isinstance(fresh, Claim)
    await store.abandon(slow)  # the slow one fails late
    with pytest.raises(Conflict) as caught:
        await store.begin("buyer", key, "digest")
    assert caught.value.code == "request_in_progress"  # the fresh claim still stands
    await store.abandon(fresh)
    assert isinstance(await store.begin("buyer", key, "digest"), Claim)


async def _crashed_checkout(
    till: Till, deal_id: int, point: str, card: str = CARD
) -> tuple[str, str, str]:
    """Reserve a unit and pay for it until the process 'dies' at ``point``: (buyer, key, hold)."""
    me, key = secrets.token_hex(6), "pay-" + secrets.token_hex(4)
    hold = await till.holds.reserve(deal_id, ReserveRequest(me, 1))
    crashing = Till(till.holds, till.provider, till.attempts, CrashAt(point))
    with pytest.raises(Crashed):
        await pay_for_hold(crashing, hold_id=hold.id, buyer=me, card=card, attempt_key=key)
    return me, key, hold.id


async def _settle_all(till: Till, redis: Redis, keys: Keyspace) -> dict[AttemptStatus, int]:
    # lease 0: every pending attempt is old enough; none of these keys is claimed by a request
    return dict(await reconcile_once(till, IdempotencyStore(redis, keys, LEASE_MS), lease_ms=0))


async def _status(till: Till, hold_id: str, key: str) -> str:
    attempt = await till.attempts.get(charge_key(hold_id, key))
    assert attempt is not None
    return attempt.status


async def test_the_reconciler_commits_a_charge_whose_hold_is_still_paying(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.after_charge")
    assert await _status(till, hold_id, key) == "pending"
    assert (await till.holds.get_hold(hold_id, me)).state == "paying"

    assert await _settle_all(till, redis, private_keys) == {AttemptStatus.COMMITTED: 1}
    assert (await till.holds.get_hold(hold_id, me)).state == "sold"
    assert await _status(till, hold_id, key) == "committed"
    entries = await redis.xrange(private_keys.deal(deal.id or 0).orders)
    assert [f["hold"] for _, f in entries] == [hold_id]  # one order.paid, for the pipeline
    charge = await till.provider.find(charge_key(hold_id, key))
    assert charge is not None and not charge.refunded
    # The buyer's retry with the same key now answers with that sale, charging nothing new.
    receipt = await pay_for_hold(till, hold_id=hold_id, buyer=me, card=CARD, attempt_key=key)
    assert receipt.payment_ref == charge.id
    assert len([c for c in await till.provider.charges() if c.key.startswith(hold_id)]) == 1
    assert await _settle_all(till, redis, private_keys) == {}  # nothing left to settle


async def test_the_reconciler_refunds_a_charge_whose_hold_lapsed(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3, hold_ttl_ms=100, pay_ttl_ms=200)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.after_charge")

    async def lapsed() -> bool:  # the pay window passes; the unit goes back on sale
        return (await till.holds.get_hold(hold_id, me)).state == "expired"

    await until(lapsed, "the hold lapses")

    assert await _settle_all(till, redis, private_keys) == {AttemptStatus.REFUNDED: 1}
    charge = await till.provider.find(charge_key(hold_id, key))
    assert charge is not None and charge.refunded
    assert await _status(till, hold_id, key) == "refunded"
    state = await till.holds.snapshot(deal.id or 0)
    assert state is not None and (state.available, state.sold) == (3, 0)


async def test_a_disputed_charge_whose_hold_lapsed_is_left_to_the_dispute_once(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    """The dispute card's charge is disputed at once: the provider refuses to refund it, so the
    reconciler settles the attempt as disputed (the bank gives the money back) instead of asking
    again on every pass."""
    deal = await make_live_deal(db, till.holds, seller, quantity=3, hold_ttl_ms=100, pay_ttl_ms=200)
    me, key, hold_id = await _crashed_checkout(
        till, deal.id or 0, "checkout.after_charge", card=DISPUTE_CARD
    )

    async def lapsed() -> bool:
        return (await till.holds.get_hold(hold_id, me)).state == "expired"

    await until(lapsed, "the hold lapses")
    assert await _settle_all(till, redis, private_keys) == {AttemptStatus.DISPUTED: 1}
    assert await _status(till, hold_id, key) == "disputed"
    charge = await till.provider.find(charge_key(hold_id, key))
    assert charge is not None and charge.dispute is not None and charge.amount_refunded == 0
    assert [r for r in await till.provider.refunds() if r.charge == charge.id] == []
    assert await _settle_all(till, redis, private_keys) == {}  # settled: not asked again
    # A retry of the buyer's request is told the hold lapsed, and is charged nothing new.
    with pytest.raises(Conflict) as refused:
        await pay_for_hold(till, hold_id=hold_id, buyer=me, card=CARD, attempt_key=key)
    assert refused.value.code in ("hold_expired", "payment_refunded"), refused.value.code
    assert len([c for c in await till.provider.charges() if c.key.startswith(hold_id)]) == 1


async def test_a_crash_before_the_charge_gives_the_hold_back_to_its_buyer(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.before_charge")

    assert await _settle_all(till, redis, private_keys) == {AttemptStatus.VOID: 1}
    assert (await till.holds.get_hold(hold_id, me)).state == "held"  # theirs, to pay again
    assert await till.provider.find(charge_key(hold_id, key)) is None
    receipt = await pay_for_hold(till, hold_id=hold_id, buyer=me, card=CARD, attempt_key=key)
    assert (await till.holds.get_hold(hold_id, me)).state == "sold"
    assert await _status(till, hold_id, key) == "committed"
    assert receipt.amount == 2500


async def test_a_declined_attempt_is_settled_as_declined(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, _, hold_id = await _crashed_checkout(
        till, deal.id or 0, "checkout.after_charge", card=DECLINED
    )
    assert await _settle_all(till, redis, private_keys) == {AttemptStatus.DECLINED: 1}
    assert (await till.holds.get_hold(hold_id, me)).state == "held"


async def test_a_crash_after_the_refund_is_recorded_as_refunded_once(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.after_charge")
    await till.holds.stop_deal(deal.id or 0)  # paying holds finish; make this one lapse:
    await till.holds.payment_failed(hold_id, me, attempt_id(key))
    await till.holds.release(hold_id, me)
    crashing = Till(till.holds, till.provider, till.attempts, CrashAt("checkout.after_refund"))
    with pytest.raises(Crashed):
        await reconcile_once(crashing, IdempotencyStore(redis, private_keys, LEASE_MS), lease_ms=0)
    assert await _status(till, hold_id, key) == "pending"  # died before writing it down
    assert await _settle_all(till, redis, private_keys) == {AttemptStatus.REFUNDED: 1}
    charge = await till.provider.find(charge_key(hold_id, key))
    assert charge is not None and charge.refunded


async def test_the_reconciler_leaves_a_running_checkout_alone(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.after_charge")
    store = IdempotencyStore(redis, private_keys, LEASE_MS)
    claim = await store.begin(me, key, "digest")  # the buyer's retry is running
    assert isinstance(claim, Claim)
    assert await reconcile_once(till, store, lease_ms=0) == {}
    assert await _status(till, hold_id, key) == "pending"
    await store.abandon(claim)
    assert await reconcile_once(till, store, lease_ms=0) == {AttemptStatus.COMMITTED: 1}


async def test_a_dead_requests_key_is_free_within_one_lease_and_a_living_one_keeps_it(
    redis: Redis, private_keys: Keyspace
) -> None:
    store = IdempotencyStore(redis, private_keys, lease_ms=1000)
    dead = await store.begin("buyer", "k-" + secrets.token_hex(4), "digest")
    living = await store.begin("buyer", "k-" + secrets.token_hex(4), "digest")
    assert isinstance(dead, Claim) and isinstance(living, Claim)
    async with store.held(living):

        async def freed() -> bool:  # nobody renews the dead one
            return not await redis.exists(dead.redis_key)

        await until(freed, "the dead request's lease lapses")
        await asyncio.sleep(1.5)  # a lease and a half: renewed three or four times meanwhile
        assert await redis.get(living.redis_key) == living.marker.decode()


async def test_a_lost_cancellation_in_the_renewal_never_holds_up_the_answer(
    redis: Redis, private_keys: Keyspace
) -> None:
    """The lease renewer once survived its cancellation (lost inside its Redis call) and the
    paid checkout waiting for it went unanswered for minutes. Here the renewal call swallows
    the cancellation as that one did: leaving ``held`` must not wait for the renewer, and the
    renewer must end by itself once its call returns."""
    store = IdempotencyStore(redis, private_keys, lease_ms=300)  # a renewal every 100 ms
    claim = await store.begin("buyer", "k-" + secrets.token_hex(4), "digest")
    assert isinstance(claim, Claim)
    real_renew, in_flight, calls = store._renew, asyncio.Event(), []

    async def swallowing(keys: list[str], args: list[object]) -> object:
        calls.append(1)
        in_flight.set()
        with contextlib.suppress(asyncio.CancelledError):  # lost, as the client once lost it
            await asyncio.sleep(0.5)
        return await real_renew(keys=keys, args=args)

    store._renew = swallowing  # type: ignore[assignment]

    async def leave_mid_renewal() -> None:
        async with store.held(claim):
            await in_flight.wait()

    await asyncio.wait_for(leave_mid_renewal(), 5)  # before the fix: waits forever

    async def renewer_ended() -> bool:
        return not idempotency._RENEWERS

    await until(renewer_ended, "the renewer ends once its call returns")
    assert len(calls) == 1  # and renews no more


async def test_a_refunded_charge_never_pays_for_a_sale(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.after_charge")
    # Its money went back and the hold to its buyer (as a reconciler racing a retry once did).
    charge = await till.provider.find(charge_key(hold_id, key))
    assert charge is not None
    await refund_whole(till.provider, charge)
    await till.holds.payment_failed(hold_id, me, attempt_id(key))
    with pytest.raises(Conflict) as caught:
        await pay_for_hold(till, hold_id=hold_id, buyer=me, card=CARD, attempt_key=key)
    assert caught.value.code == "payment_refunded"
    assert (await till.holds.get_hold(hold_id, me)).state == "held"  # theirs, for a new key
    assert await redis.xlen(private_keys.deal(deal.id or 0).orders) == 0
    assert await _status(till, hold_id, key) == "refunded"
    receipt = await pay_for_hold(till, hold_id=hold_id, buyer=me, card=CARD, attempt_key="new")
    assert receipt.payment_ref != charge.id


async def test_a_retry_waits_while_the_reconciler_settles_its_attempt(
    redis: Redis, private_keys: Keyspace
) -> None:
    store = IdempotencyStore(redis, private_keys, LEASE_MS)
    key = "k-" + secrets.token_hex(4)
    settling = await store.claim_for_settling("buyer", key)
    assert settling is not None
    with pytest.raises(Conflict) as caught:  # any body: the reconciler's claim has no hash
        await store.begin("buyer", key, "digest")
    assert caught.value.code == "request_in_progress"
    assert await store.claim_for_settling("buyer", key) is None
    await store.abandon(settling)
    assert isinstance(await store.begin("buyer", key, "digest"), Claim)


async def test_an_attempt_left_pending_under_a_finished_key_is_still_settled(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    # Died before the charge; the hold lapsed; the retry answered hold_expired and its response
    # is stored for a day. The attempt must not stay pending for that day (CI once saw it).
    deal = await make_live_deal(db, till.holds, seller, quantity=3, hold_ttl_ms=100, pay_ttl_ms=200)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.before_charge")
    store = IdempotencyStore(redis, private_keys, LEASE_MS)
    claim = await store.begin(me, key, "digest")
    assert isinstance(claim, Claim)
    await store.finish(claim, "digest", StoredResponse(409, b'{"error": "hold_expired"}'))
    assert await reconcile_once(till, store, lease_ms=0) == {AttemptStatus.VOID: 1}
    assert await _status(till, hold_id, key) == "void"
    replay = await store.begin(me, key, "digest")  # the stored answer outlives the settling
    assert replay == StoredResponse(409, b'{"error": "hold_expired"}')


async def test_a_retry_that_finds_its_own_sale_settles_the_attempt(
    db: Database, till: Till, redis: Redis, private_keys: Keyspace, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, till.holds, seller, quantity=3)
    me, key, hold_id = await _crashed_checkout(till, deal.id or 0, "checkout.after_commit")
    assert await _status(till, hold_id, key) == "pending"
    receipt = await pay_for_hold(till, hold_id=hold_id, buyer=me, card=CARD, attempt_key=key)
    assert await _status(till, hold_id, key) == "committed"
    attempt = await till.attempts.get(charge_key(hold_id, key))
    assert attempt is not None and attempt.payment_ref == receipt.payment_ref
