"""The hold functions in Redis, called directly: every rule, and races fought for real."""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from catalog.models import Deal
from checkout.holds import Hold, HoldStore, ReserveRequest
from checkout.keys import Keyspace
from kernel.db import Database
from kernel.errors import Conflict, NotFound
from kernel.redis_client import connect
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal, outcome, until

pytestmark = pytest.mark.storage


def buyer() -> str:
    return secrets.token_hex(8)


async def totals(store: HoldStore, deal_id: int) -> tuple[int, int, int]:
    state = await store.snapshot(deal_id)
    assert state is not None
    assert state.available + state.held + state.sold == state.quantity
    return state.available, state.held, state.sold


async def reserve_or_error(store: HoldStore, deal_id: int, req: ReserveRequest) -> Hold | str:
    return await outcome(store.reserve(deal_id, req))


LiveDeal = Callable[..., Awaitable[Deal]]


@pytest.fixture
def live_deal(db: Database, private_holds: HoldStore, seller: SellerAccount) -> LiveDeal:
    """Opens a live deal of the test seller's on the private hold store (``make_live_deal``'s
    terms)."""
    return functools.partial(make_live_deal, db, private_holds, seller)


async def new_hold(store: HoldStore, deal: Deal, qty: int) -> tuple[str, Hold]:
    """A new buyer, and the hold they just made on the deal."""
    me = buyer()
    return me, await store.reserve(deal.id or 0, ReserveRequest(me, qty))


async def test_reserve_takes_stock_and_commit_sells_it(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=10, limit=3)
    me, hold = await new_hold(private_holds, deal, 3)
    assert (hold.qty, hold.state) == (3, "held")
    assert await totals(private_holds, deal.id or 0) == (7, 3, 0)
    terms = await private_holds.begin_payment(hold.id, me)
    assert terms.amount == 3 * 2500
    await private_holds.commit(hold.id, me, "pay-1")
    assert await totals(private_holds, deal.id or 0) == (7, 0, 3)
    assert (await private_holds.get_hold(hold.id, me)).state == "sold"


async def test_commit_writes_one_order_entry(
    db: Database,
    private_holds: HoldStore,
    seller: SellerAccount,
    redis: Redis,
    private_keys: Keyspace,
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=5)
    me, hold = await new_hold(private_holds, deal, 2)
    await private_holds.begin_payment(hold.id, me)
    await private_holds.commit(hold.id, me, "pay-9")
    await private_holds.commit(hold.id, me, "pay-9")  # a repeated commit is a no-op
    entries = await redis.xrange(private_keys.deal(deal.id or 0).orders)
    assert [(f["hold"], f["qty"], f["buyer"], f["payment_ref"]) for _, f in entries] == [
        (hold.id, "2", me, "pay-9")
    ]


async def test_retried_request_id_returns_the_same_hold(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=10, limit=5)
    me = buyer()
    first = await private_holds.reserve(deal.id or 0, ReserveRequest(me, 2, "req-1"))
    again = await private_holds.reserve(deal.id or 0, ReserveRequest(me, 2, "req-1"))
    assert again.id == first.id and again.replayed and not first.replayed
    assert await totals(private_holds, deal.id or 0) == (8, 2, 0)
    other = await private_holds.reserve(deal.id or 0, ReserveRequest(buyer(), 1, "req-1"))
    assert other.id != first.id  # request ids are scoped to the buyer


async def test_refusals_change_nothing(private_holds: HoldStore, live_deal: LiveDeal) -> None:
    deal = await live_deal(quantity=5, limit=3)
    deal_id = deal.id or 0
    me = buyer()
    assert await reserve_or_error(private_holds, deal_id, ReserveRequest(me, 4)) == "limit_exceeded"
    await private_holds.reserve(deal_id, ReserveRequest(me, 3))
    assert await reserve_or_error(private_holds, deal_id, ReserveRequest(me, 1)) == "limit_exceeded"
    with pytest.raises(Conflict) as caught:
        await private_holds.reserve(deal_id, ReserveRequest(buyer(), 3))
    assert (caught.value.code, caught.value.details) == (
        "insufficient_stock",
        {"wanted": 3, "left": 2},
    )
    await private_holds.reserve(deal_id, ReserveRequest(buyer(), 2))
    assert await reserve_or_error(private_holds, deal_id, ReserveRequest(buyer(), 1)) == "sold_out"
    assert (
        await reserve_or_error(private_holds, deal_id, ReserveRequest(buyer(), 0))
        == "invalid_quantity"
    )
    assert await totals(private_holds, deal_id) == (0, 5, 0)


async def test_window_is_enforced(private_holds: HoldStore, live_deal: LiveDeal) -> None:
    later = await live_deal(starts_in_ms=60_000)
    assert (
        await reserve_or_error(private_holds, later.id or 0, ReserveRequest(buyer(), 1))
        == "deal_not_started"
    )
    over = await live_deal(starts_in_ms=-2000, duration_ms=1000)
    assert (
        await reserve_or_error(private_holds, over.id or 0, ReserveRequest(buyer(), 1))
        == "deal_ended"
    )
    stopped = await live_deal()
    await private_holds.stop_deal(stopped.id or 0)
    assert (
        await reserve_or_error(private_holds, stopped.id or 0, ReserveRequest(buyer(), 1))
        == "deal_ended"
    )
    phases = [await phase(private_holds, d.id or 0) for d in (later, over, stopped)]
    assert phases == ["upcoming", "ended", "ended"]


async def test_stopping_a_deal_gives_back_held_units_and_lets_a_payment_under_way_finish(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    """A seller stops a mispriced deal: nobody may start paying that price any more."""
    deal = await make_live_deal(db, private_holds, seller, quantity=5)
    deal_id = deal.id or 0
    holder, payer = buyer(), buyer()
    held = await private_holds.reserve(deal_id, ReserveRequest(holder, 2))
    paying = await private_holds.reserve(deal_id, ReserveRequest(payer, 1))
    await private_holds.begin_payment(paying.id, payer, "attempt-1")
    assert await private_holds.stop_deal(deal_id) == [(held.id, holder)]
    assert await totals(private_holds, deal_id) == (4, 1, 0)  # the held two are back
    assert (await private_holds.get_hold(held.id, holder)).state == "released"
    with pytest.raises(Conflict) as refused:
        await private_holds.begin_payment(held.id, holder, "attempt-2")
    assert refused.value.code == "deal_ended"
    await private_holds.commit(paying.id, payer, "pay-ref", "attempt-1")
    assert await totals(private_holds, deal_id) == (4, 0, 1)
    assert await private_holds.stop_deal(deal_id) == []  # stopping again changes nothing


async def phase(store: HoldStore, deal_id: int) -> str:
    state = await store.snapshot(deal_id)
    assert state is not None
    return state.phase


async def test_phase_follows_stock(private_holds: HoldStore, live_deal: LiveDeal) -> None:
    deal = await live_deal(quantity=1, limit=1)
    me = buyer()
    assert await phase(private_holds, deal.id or 0) == "open"
    hold = await private_holds.reserve(deal.id or 0, ReserveRequest(me, 1))
    assert await phase(private_holds, deal.id or 0) == "sold_out"
    await private_holds.release(hold.id, me)
    assert await phase(private_holds, deal.id or 0) == "open"


async def test_lapsed_holds_return_their_stock_before_any_sweeper(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=4, limit=4, hold_ttl_ms=300)
    me, hold = await new_hold(private_holds, deal, 4)
    assert (
        await reserve_or_error(private_holds, deal.id or 0, ReserveRequest(buyer(), 1))
        == "sold_out"
    )
    await asyncio.sleep(0.45)
    # No sweeper runs in this test: the read itself reclaims the lapsed hold.
    assert await totals(private_holds, deal.id or 0) == (4, 0, 0)
    assert (await private_holds.get_hold(hold.id, me)).state == "expired"
    with pytest.raises(Conflict) as caught:
        await private_holds.begin_payment(hold.id, me)
    assert caught.value.code == "hold_expired"
    # The buyer's limit is freed too.
    assert (await private_holds.reserve(deal.id or 0, ReserveRequest(me, 4))).qty == 4


async def test_paying_extends_the_hold_and_a_decline_gives_the_extension_back(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=2, hold_ttl_ms=300, pay_ttl_ms=5000)
    me, hold = await new_hold(private_holds, deal, 1)
    await private_holds.begin_payment(hold.id, me, "attempt-1")
    await asyncio.sleep(0.45)  # past the hold's own deadline, inside the payment window
    assert (await private_holds.get_hold(hold.id, me)).state == "paying"
    assert await totals(private_holds, deal.id or 0) == (1, 1, 0)
    with pytest.raises(Conflict) as caught:  # one payment attempt at a time
        await private_holds.begin_payment(hold.id, me, "attempt-2")
    assert caught.value.code == "payment_in_progress"
    await private_holds.payment_failed(hold.id, me, "attempt-2")  # not the paying attempt
    assert (await private_holds.get_hold(hold.id, me)).state == "paying"
    await private_holds.payment_failed(hold.id, me, "attempt-1")
    # Back to its own deadline, which has passed: declining cannot keep a hold alive.
    assert (await private_holds.get_hold(hold.id, me)).state == "expired"
    assert await totals(private_holds, deal.id or 0) == (2, 0, 0)


async def test_a_decline_inside_the_deadline_keeps_the_hold(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=2)
    me, hold = await new_hold(private_holds, deal, 1)
    await private_holds.begin_payment(hold.id, me, "a")
    await private_holds.payment_failed(hold.id, me, "a")
    after = await private_holds.get_hold(hold.id, me)
    assert (after.state, after.expires_ms) == ("held", hold.expires_ms)
    await private_holds.begin_payment(hold.id, me, "b")  # another card may try now
    await private_holds.commit(hold.id, me, "pay-b", "b")
    assert await totals(private_holds, deal.id or 0) == (1, 0, 1)


async def test_release_and_foreign_holds(private_holds: HoldStore, live_deal: LiveDeal) -> None:
    deal = await live_deal(quantity=3)
    me, stranger = buyer(), buyer()
    hold = await private_holds.reserve(deal.id or 0, ReserveRequest(me, 2))
    for call in (private_holds.release, private_holds.begin_payment, private_holds.get_hold):
        with pytest.raises(NotFound):
            await call(hold.id, stranger)
    await private_holds.release(hold.id, me)
    assert await totals(private_holds, deal.id or 0) == (3, 0, 0)
    with pytest.raises(Conflict) as caught:
        await private_holds.release(hold.id, me)
    assert caught.value.code == "hold_released"
    for bad in ("nonsense", f"{deal.id}-999", "999999-1"):
        with pytest.raises(NotFound):
            await private_holds.begin_payment(bad, me)


async def test_a_paying_hold_cannot_be_released(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=3)
    me, hold = await new_hold(private_holds, deal, 1)
    await private_holds.begin_payment(hold.id, me)
    with pytest.raises(Conflict) as caught:
        await private_holds.release(hold.id, me)
    assert caught.value.code == "payment_in_progress"


async def test_per_buyer_limit_holds_under_concurrent_requests(
    db: Database, private_holds: HoldStore, seller: SellerAccount, redis_url: str
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=100, limit=3)
    me = buyer()
    # Separate connections, so the requests really are concurrent at the server.
    clients = [connect(redis_url) for _ in range(20)]
    stores = [HoldStore(c, private_holds.keys) for c in clients]
    try:
        outcomes = await asyncio.gather(
            *[
                reserve_or_error(stores[i % 20], deal.id or 0, ReserveRequest(me, 1))
                for i in range(200)
            ]
        )
    finally:
        for c in clients:
            await c.aclose()
    granted = [o for o in outcomes if isinstance(o, Hold)]
    assert len(granted) == 3
    assert {o for o in outcomes if isinstance(o, str)} == {"limit_exceeded"}
    assert await totals(private_holds, deal.id or 0) == (97, 3, 0)


async def test_a_different_deal_under_a_loaded_id_is_refused(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=3)
    assert not await private_holds.load_deal(deal, hold_ttl_ms=1000, pay_ttl_ms=1000)  # same
    impostor = deal.model_copy(update={"deal_price": deal.deal_price - 1})
    with pytest.raises(Conflict) as caught:
        await private_holds.load_deal(impostor, hold_ttl_ms=1000, pay_ttl_ms=1000)
    assert caught.value.code == "deal_state_mismatch"
    state = await private_holds.snapshot(deal.id or 0)
    assert state is not None and state.deal_price == deal.deal_price


async def test_releasing_a_lapsed_hold_says_it_expired(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=3, hold_ttl_ms=100)
    me, hold = await new_hold(private_holds, deal, 1)
    ends = hold.expires_ms

    async def lapsed() -> bool:  # by the server's clock; nothing has reclaimed it yet
        state = await private_holds.redis.hget(private_holds.keys.deal(deal.id or 0).holds, hold.id)
        server_ms = int((await private_holds.redis.time())[0]) * 1000
        return state is not None and state.startswith("held|") and server_ms > ends

    await until(lapsed, "the hold's deadline passes")
    with pytest.raises(Conflict) as caught:
        await private_holds.release(hold.id, me)
    assert caught.value.code == "hold_expired"  # not a 204: the release did nothing
    assert await totals(private_holds, deal.id or 0) == (3, 0, 0)


async def test_a_commit_by_another_attempt_after_a_sale_is_refused(
    private_holds: HoldStore, live_deal: LiveDeal
) -> None:
    deal = await live_deal(quantity=3)
    me, hold = await new_hold(private_holds, deal, 1)
    await private_holds.begin_payment(hold.id, me, "first")
    await private_holds.commit(hold.id, me, "ch_1", "first")
    await private_holds.commit(hold.id, me, "ch_1", "first")  # a repeat of the same attempt
    with pytest.raises(Conflict) as caught:
        await private_holds.commit(hold.id, me, "ch_2", "second")
    assert caught.value.code == "hold_already_paid"  # the second charge must be refunded
    terms = await private_holds.begin_payment(hold.id, me, "first")
    assert terms.paid and terms.amount == 2500  # the first attempt's retry answers with the sale
    assert await totals(private_holds, deal.id or 0) == (2, 0, 1)


async def test_a_caller_with_an_old_keys_layout_is_refused_not_misfiled(
    db: Database,
    private_holds: HoldStore,
    seller: SellerAccount,
    redis: Redis,
    private_keys: Keyspace,
) -> None:
    """Until decision 0025 KEYS[6] was a room events stream, until decision 0027 there was no
    KEYS[10] (restocks), and until the waitlist (issue 18) no KEYS[11] and [12]: a node of any
    of those versions gets an error, not its reservations (or order entries) written under the
    wrong keys."""
    deal = await make_live_deal(db, private_holds, seller, quantity=5)
    keys = private_keys.deal(deal.id or 0).function_keys()
    before_waitlist = keys[:10]
    before_0027 = keys[:9]
    before_0025 = [*keys[:5], f"{keys[0]}-events", *keys[5:11]]
    misplaced = [*keys[:10], keys[11], keys[10]]
    for old, refusal in (
        (before_waitlist, "expected 12 keys, got 10"),
        (before_0027, "expected 12 keys, got 9"),
        (before_0025, "KEYS\\[6\\] must be the orders stream"),
        (misplaced, "KEYS\\[11\\] the waitlist"),
    ):
        with pytest.raises(ResponseError, match=refusal):
            await redis.fcall("lc_reserve_many", len(old), *old, str(deal.id), f"{buyer()} 1   g\n")
    assert await totals(private_holds, deal.id or 0) == (5, 0, 0)
