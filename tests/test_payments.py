"""The sandbox payment provider, shaped like Stripe (decision 0027), against a real Redis: charges,
refunds (full, partial, idempotent per key, never above what is left, raced), pending refunds
the sandbox finishes later, payouts, versions and the events stream. Each test has a provider
of its own (its own records and events) in the private keyspace."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from checkout.error_codes import CheckoutErrorCode
from checkout.keys import Keyspace, SandboxKeys
from checkout.payments import (
    PENDING_REFUNDS_CARD,
    Charge,
    ChargeStatus,
    PayoutStatus,
    ProviderRefund,
    RefundStatus,
    SandboxProvider,
    refund_whole,
)
from kernel.errors import Conflict, DomainError, Invalid

pytestmark = pytest.mark.storage

CARD = "4242424242424242"
DECLINED = "4000000000000002"


@pytest.fixture
def provider(redis: Redis, private_keys: Keyspace) -> SandboxProvider:
    """A sandbox of the test's own: its charges(), refunds() and events() are only this test's."""
    return SandboxProvider(redis, Keyspace(f"{private_keys.prefix}-{secrets.token_hex(4)}").sandbox)


def new_key() -> str:
    return "k-" + secrets.token_hex(6)


async def charged(provider: SandboxProvider, amount: int = 1000, card: str = CARD) -> Charge:
    return await provider.charge(key=new_key(), amount=amount, currency="USD", card=card)


async def refund(
    provider: SandboxProvider, charge: Charge, amount: int, key: str | None = None
) -> ProviderRefund:
    return await provider.refund(
        key=key or new_key(), charge_id=charge.id, amount=amount, reason="test"
    )


async def current(provider: SandboxProvider, charge: Charge) -> Charge:
    found = await provider.find(charge.key)
    assert found is not None
    return found


async def snapshot(provider: SandboxProvider) -> tuple[object, ...]:
    """Everything the provider holds: to show that a refused call changed nothing."""
    return (
        sorted(await provider.charges(), key=lambda c: c.id),
        sorted(await provider.refunds(), key=lambda r: r.id),
        sorted(await provider.payouts(), key=lambda p: p.id),
        [e.id for e in await provider.events("")],
    )


async def refused(call: object, code: CheckoutErrorCode) -> DomainError:
    assert asyncio.iscoroutine(call)
    with pytest.raises(DomainError) as caught:
        await call
    assert caught.value.code == code
    return caught.value


# Charges


async def test_a_charge_is_made_once_per_key(provider: SandboxProvider) -> None:
    key = new_key()
    calls = [provider.charge(key=key, amount=1000, currency="USD", card=CARD) for _ in range(20)]
    answers = await asyncio.gather(*calls)
    assert {c.id for c in answers} == {answers[0].id}
    assert [(c.key, c.amount, c.status) for c in await provider.charges()] == [
        (key, 1000, ChargeStatus.APPROVED)
    ]
    assert await provider.find(key) == answers[0]
    assert await provider.find(new_key()) is None
    other = await charged(provider)
    assert other.id != answers[0].id


async def test_a_charge_key_reused_with_another_amount_or_currency_is_refused(
    provider: SandboxProvider,
) -> None:
    key = new_key()
    first = await provider.charge(key=key, amount=1000, currency="USD", card=CARD)
    for amount, currency in ((1001, "USD"), (1000, "EUR")):
        with pytest.raises(DomainError) as refused:
            await provider.charge(key=key, amount=amount, currency=currency, card=CARD)
        assert refused.value.code == CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await provider.charge(key=key, amount=1000, currency="USD", card=CARD) == first
    assert [c.id for c in await provider.charges()] == [first.id]


async def test_a_declined_card_makes_a_failed_charge(provider: SandboxProvider) -> None:
    charge = await charged(provider, card=DECLINED)
    assert charge.status is ChargeStatus.DECLINED
    assert [e.type for e in await provider.events("")] == ["charge.failed"]


async def test_an_unknown_card_is_refused_and_records_nothing(provider: SandboxProvider) -> None:
    with pytest.raises(Invalid) as caught:
        await provider.charge(key=new_key(), amount=1000, currency="USD", card="1234")
    assert caught.value.code == CheckoutErrorCode.INVALID_CARD
    assert await snapshot(provider) == ([], [], [], [])


# Refunds


async def test_a_full_refund_gives_the_whole_charge_back(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    given = await refund(provider, charge, 1000)
    assert (given.charge, given.amount, given.currency, given.status) == (
        charge.id,
        1000,
        "USD",
        RefundStatus.SUCCEEDED,
    )
    after = await current(provider, charge)
    assert (after.amount_refunded, after.refunded) == (1000, True)
    assert await provider.find_refund(given.key) == given


async def test_partial_refunds_add_up_to_the_charge_and_no_further(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000)
    first = await refund(provider, charge, 300)
    assert (await current(provider, charge)).amount_refunded == 300
    assert not (await current(provider, charge)).refunded
    await refund(provider, charge, 300)
    await refund(provider, charge, 400)
    after = await current(provider, charge)
    assert (after.amount_refunded, after.refunded) == (1000, True)

    before = await snapshot(provider)
    key = new_key()
    error = await refused(refund(provider, charge, 1, key), CheckoutErrorCode.REFUND_EXCEEDS_PAID)
    assert isinstance(error, Conflict) and error.details["refundable"] == 0
    assert await snapshot(provider) == before
    assert await provider.find_refund(key) is None  # a refused key is not taken
    assert first in await provider.refunds()


async def test_a_refund_above_what_is_left_is_refused(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    await refund(provider, charge, 600)
    before = await snapshot(provider)
    error = await refused(refund(provider, charge, 401), CheckoutErrorCode.REFUND_EXCEEDS_PAID)
    assert error.details["refundable"] == 400
    assert await snapshot(provider) == before
    assert (await refund(provider, charge, 400)).amount == 400  # exactly what is left is fine


async def test_the_same_key_with_the_same_params_is_the_same_refund(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000)
    key = new_key()
    first = await refund(provider, charge, 300, key)
    before = await snapshot(provider)
    again = await refund(provider, charge, 300, key)
    assert again == first
    assert await snapshot(provider) == before  # no second refund, no event, no version
    assert (await current(provider, charge)).amount_refunded == 300


async def test_the_same_key_with_another_amount_or_charge_is_refused(
    provider: SandboxProvider,
) -> None:
    charge, other = await charged(provider, 1000), await charged(provider, 1000)
    key = new_key()
    await refund(provider, charge, 300, key)
    before = await snapshot(provider)
    await refused(refund(provider, charge, 200, key), CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED)
    await refused(refund(provider, other, 300, key), CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED)
    assert await snapshot(provider) == before


async def test_twenty_concurrent_refunds_under_one_key_make_one(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    key = new_key()
    answers = await asyncio.gather(*[refund(provider, charge, 1000, key) for _ in range(20)])
    assert {r.id for r in answers} == {answers[0].id}
    assert len(await provider.refunds()) == 1
    after = await current(provider, charge)
    assert (after.amount_refunded, after.version) == (1000, 2)


async def test_twenty_concurrent_full_refunds_under_twenty_keys_make_one(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000)
    answers = await asyncio.gather(
        *[refund(provider, charge, 1000) for _ in range(20)], return_exceptions=True
    )
    made = [a for a in answers if isinstance(a, ProviderRefund)]
    lost = [a for a in answers if not isinstance(a, ProviderRefund)]
    assert len(made) == 1
    assert all(
        isinstance(e, Conflict) and e.code == CheckoutErrorCode.REFUND_EXCEEDS_PAID for e in lost
    )
    assert len(lost) == 19
    assert await provider.refunds() == made
    assert (await current(provider, charge)).amount_refunded == 1000


async def test_a_refund_of_an_unknown_or_declined_charge_is_refused(
    provider: SandboxProvider,
) -> None:
    declined = await charged(provider, card=DECLINED)
    before = await snapshot(provider)
    for charge_id in ("ch_" + secrets.token_hex(12), declined.id):
        await refused(
            provider.refund(key=new_key(), charge_id=charge_id, amount=100, reason="test"),
            CheckoutErrorCode.PROVIDER_REFUSED,
        )
    assert await snapshot(provider) == before


async def test_a_refund_of_nothing_or_less_is_refused(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    before = await snapshot(provider)
    for amount in (0, -5):
        await refused(refund(provider, charge, amount), CheckoutErrorCode.INVALID_AMOUNT)
    assert await snapshot(provider) == before


# Versions and events


async def test_each_change_raises_the_objects_version_by_one(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    assert charge.version == 1
    first = await refund(provider, charge, 100)
    assert first.version == 1
    assert (await current(provider, charge)).version == 2
    await refund(provider, charge, 100)
    assert (await current(provider, charge)).version == 3
    await refund(provider, charge, 100, first.key)  # a repeat changes nothing
    assert (await current(provider, charge)).version == 3

    slow = await charged(provider, 1000, card=PENDING_REFUNDS_CARD)
    pending = await refund(provider, slow, 400)
    assert ((await current(provider, slow)).version, pending.version) == (2, 1)
    failed = await provider.finish_refund(pending.id, RefundStatus.FAILED)
    assert failed is not None and failed.version == 2
    assert (await current(provider, slow)).version == 3  # its amount came back


async def test_events_come_in_order_with_the_object_as_of_each_change(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000)
    first = await refund(provider, charge, 300)
    second = await refund(provider, charge, 700)
    events = await provider.events("")
    assert [(e.type, e.object["id"], e.object["version"]) for e in events] == [
        ("charge.succeeded", charge.id, 1),
        ("charge.refunded", charge.id, 2),
        ("refund.created", first.id, 1),
        ("charge.refunded", charge.id, 3),
        ("refund.created", second.id, 1),
    ]
    # Each carries the object whole as it was then, not as it is now.
    assert [e.object["amount_refunded"] for e in events if e.object["id"] == charge.id] == [
        0,
        300,
        1000,
    ]
    assert events[2].object == {**events[2].object, "amount": 300, "status": "succeeded"}
    assert all(e.created_ms > 0 for e in events)
    assert len({e.id for e in events}) == len(events)

    # Paging: ``after`` is exclusive, ``count`` bounds a page, the end is an empty page.
    assert await provider.events("", count=2) == events[:2]
    assert await provider.events(events[1].id, count=2) == events[2:4]
    assert await provider.events(events[3].id) == events[4:]
    assert await provider.events(events[-1].id) == []
    paged, cursor = [], ""
    while page := await provider.events(cursor, count=2):
        paged += page
        cursor = page[-1].id
    assert paged == events


async def test_a_pending_refund_succeeds_when_the_sandbox_finishes_it(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000, card=PENDING_REFUNDS_CARD)
    assert charge.status is ChargeStatus.APPROVED
    pending = await refund(provider, charge, 1000)
    assert pending.status is RefundStatus.PENDING
    assert (await current(provider, charge)).amount_refunded == 1000  # as Stripe: held for it
    done = await provider.finish_refund(pending.id, RefundStatus.SUCCEEDED)
    assert done is not None
    assert (done.id, done.status, done.version) == (pending.id, RefundStatus.SUCCEEDED, 2)
    assert await provider.find_refund(pending.key) == done
    assert (await current(provider, charge)).amount_refunded == 1000
    last = (await provider.events(""))[-1]
    assert (last.type, last.object["status"], last.object["version"]) == (
        "refund.updated",
        "succeeded",
        2,
    )
    # Finished is finished: neither a second finish nor a repeat of the key changes it.
    before = await snapshot(provider)
    assert await provider.finish_refund(pending.id, RefundStatus.FAILED) is None
    assert await refund(provider, charge, 1000, pending.key) == done
    assert await snapshot(provider) == before


async def test_a_pending_refund_that_fails_gives_the_amount_back(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000, card=PENDING_REFUNDS_CARD)
    pending = await refund(provider, charge, 600)
    await refused(refund(provider, charge, 500), CheckoutErrorCode.REFUND_EXCEEDS_PAID)
    failed = await provider.finish_refund(pending.id, RefundStatus.FAILED)
    assert failed is not None and failed.status is RefundStatus.FAILED
    assert (await current(provider, charge)).amount_refunded == 0
    assert [e.type for e in await provider.events("")][-2:] == [
        "charge.refunded",
        "refund.updated",
    ]
    # What failed can be refunded again, under a new key.
    assert (await refund(provider, charge, 1000)).status is RefundStatus.PENDING


async def test_only_a_pending_refund_can_be_finished(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    done = await refund(provider, charge, 1000)
    before = await snapshot(provider)
    assert await provider.finish_refund(done.id, RefundStatus.FAILED) is None
    assert await provider.finish_refund("re_nothing", RefundStatus.SUCCEEDED) is None
    assert await provider.finish_refund(charge.id, RefundStatus.SUCCEEDED) is None
    assert await snapshot(provider) == before
    slow = await charged(provider, 1000, card=PENDING_REFUNDS_CARD)
    pending = await refund(provider, slow, 1000)
    before = await snapshot(provider)
    # Pending is not an outcome: finishing with it is a mistake and changes nothing.
    with pytest.raises(ValueError):
        await provider.finish_refund(pending.id, RefundStatus.PENDING)
    assert await snapshot(provider) == before
    assert (await provider.finish_refund(pending.id, RefundStatus.SUCCEEDED)) is not None


# Payouts


async def test_a_payout_is_paid_once_per_key(provider: SandboxProvider) -> None:
    key = new_key()
    calls = [
        provider.payout(key=key, destination="bank:1", amount=6650, currency="USD")
        for _ in range(10)
    ]
    answers = await asyncio.gather(*calls)
    paid = answers[0]
    assert {p.id for p in answers} == {paid.id}
    assert (paid.status, paid.amount, paid.destination, paid.version) == (
        PayoutStatus.PAID,
        6650,
        "bank:1",
        1,
    )
    assert await provider.find_payout(key) == paid
    assert await provider.payouts() == [paid]
    assert [(e.type, e.object["id"]) for e in await provider.events("")] == [
        ("payout.paid", paid.id)
    ]
    before = await snapshot(provider)
    await refused(
        provider.payout(key=key, destination="bank:1", amount=1, currency="USD"),
        CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
    )
    await refused(
        provider.payout(key=key, destination="bank:2", amount=6650, currency="USD"),
        CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
    )
    assert await snapshot(provider) == before


async def test_a_payout_to_a_failing_destination_fails(provider: SandboxProvider) -> None:
    failed = await provider.payout(
        key=new_key(), destination="fail:closed-account", amount=100, currency="USD"
    )
    assert failed.status is PayoutStatus.FAILED
    assert [e.type for e in await provider.events("")] == ["payout.failed"]
    assert await provider.find_payout(new_key()) is None


# refund_whole: a charge that sold nothing (decision 0017)


async def test_refund_whole_twice_refunds_once(provider: SandboxProvider) -> None:
    charge = await charged(provider, 1000)
    first = await refund_whole(provider, charge)
    second = await refund_whole(provider, charge)
    assert second == first
    assert (first.amount, first.status) == (1000, RefundStatus.SUCCEEDED)
    assert await provider.refunds() == [first]
    assert (await current(provider, charge)).refunded


async def test_refund_whole_gives_back_what_partial_refunds_left(
    provider: SandboxProvider,
) -> None:
    charge = await charged(provider, 1000)
    await refund(provider, charge, 300)
    whole = await refund_whole(provider, charge)  # the caller's charge is stale: 0 refunded
    assert whole.amount == 700
    assert (await current(provider, charge)).amount_refunded == 1000


async def test_concurrent_refund_wholes_refund_once(provider: SandboxProvider) -> None:
    # The checkout and the reconciler may both find the same orphaned charge.
    charge = await charged(provider, 1000)
    answers = await asyncio.gather(*[refund_whole(provider, charge) for _ in range(20)])
    assert {r.id for r in answers} == {answers[0].id}
    assert len(await provider.refunds()) == 1
    assert (await current(provider, charge)).amount_refunded == 1000


class Interleaved(SandboxProvider):
    """The same sandbox, where another caller's ``refund_whole`` of the charge runs to its end
    just before this caller's first call of ``step``: the interleaving a checkout and the
    reconciler can produce, made to happen every time."""

    def __init__(self, sandbox: SandboxProvider, charge: Charge, step: str) -> None:
        super().__init__(sandbox.redis, SandboxKeys(*sandbox.keys))
        self.other, self.target, self.step = sandbox, charge, step
        self.landed: ProviderRefund | None = None

    async def _before(self, step: str) -> None:
        if step == self.step and self.landed is None:
            self.landed = await refund_whole(self.other, self.target)

    async def find(self, key: str) -> Charge | None:
        await self._before("find")
        return await super().find(key)

    async def find_refund(self, key: str) -> ProviderRefund | None:
        await self._before("find_refund")
        return await super().find_refund(key)

    async def refund(self, *, key: str, charge_id: str, amount: int, reason: str) -> ProviderRefund:
        await self._before("refund")
        return await super().refund(key=key, charge_id=charge_id, amount=amount, reason=reason)


@pytest.mark.parametrize("step", ["find", "find_refund", "refund"])
async def test_a_refund_whole_landing_between_the_steps_of_another_refunds_once(
    provider: SandboxProvider, step: str
) -> None:
    charge = await charged(provider, 1000)
    racing = Interleaved(provider, charge, step)
    mine = await refund_whole(racing, charge)
    assert racing.landed is not None and mine == racing.landed
    assert await provider.refunds() == [mine]
    assert (await current(provider, charge)).amount_refunded == 1000
