"""Random interleavings of everything that can happen to a deal's holds, driven by hypothesis:
reserve, release, pay (approved, declined, slow enough to lapse), crash mid-payment at every
checkout crash point, restart (the reconciler's pass), sweep, expire and stop the deal. After
every step the books must balance:

- available + held + sold == quantity, none negative;
- each buyer's count (what the per-buyer limit checks) is exactly their live and sold units, and
  never above the limit;
- the sold counter is the units of the sold holds, and each sold hold has exactly one order.paid
  entry, paid by an approved, unrefunded charge;
- every approved, unrefunded charge is that sale's, or belongs to an attempt still pending
  (a crash the reconciler has not seen yet). At the end the reconciler runs and then every
  approved charge is exactly one order or one refund.

Real Redis and SQL throughout; the event loop is the test's own, since hypothesis drives rules
synchronously. ``LIVECART_STATEFUL_EXAMPLES`` examples of 30 steps (25 by default; CI: 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from catalog import service
from checkout.attempts import AttemptStore
from checkout.checkout import Till, pay_for_hold
from checkout.faults import POINTS
from checkout.holds import HoldStore, ReserveRequest
from checkout.idempotency import IdempotencyStore
from checkout.keys import Keyspace
from checkout.payments import ChargeStatus, SandboxProvider
from checkout.reconciler import reconcile_once
from kernel.db import Database
from kernel.errors import DomainError
from kernel.redis_client import connect
from tests.conftest import PREFIX, SellerAccount
from tests.helpers import CrashAt, Crashed, make_live_deal
from web.settings import Settings

pytestmark = [pytest.mark.storage, pytest.mark.crash, pytest.mark.slow]

EXAMPLES = int(os.environ.get("LIVECART_STATEFUL_EXAMPLES") or 25)
QUANTITY = 5
LIMIT = 2
HOLD_TTL_MS = 100
LEASE_MS = Settings().checkout_lease_ms
APPROVED, DECLINED = "4242424242424242", "4000000000000002"
CHECKOUT_POINTS = [point for point in POINTS if point.startswith("checkout.")]

T = TypeVar("T")


class World:
    """What every example shares: one event loop, one Redis client, one database, a seller."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.redis = connect(redis_url)
        self.db = Database(database_url)
        self.keys = Keyspace(PREFIX + "h")
        self.holds = HoldStore(self.redis, self.keys)
        self.run(self.holds.install())
        self.seller = self.run(self._seller())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    async def _seller(self) -> SellerAccount:
        async with self.db.session() as session:
            me, shop, token = await service.create_seller(
                session, "States", f"states-{secrets.token_hex(6)}@example.com"
            )
        return SellerAccount(me, shop, token)

    def close(self) -> None:
        self.run(self.redis.aclose())
        self.run(self.db.close())
        self.loop.close()


def machine_for(world: World) -> type[RuleBasedStateMachine]:
    class Checkout(RuleBasedStateMachine):
        holds = Bundle("holds")

        @initialize()
        def open_deal(self) -> None:
            deal = world.run(
                make_live_deal(
                    world.db,
                    world.holds,
                    world.seller,
                    quantity=QUANTITY,
                    limit=LIMIT,
                    hold_ttl_ms=HOLD_TTL_MS,
                    pay_ttl_ms=HOLD_TTL_MS,
                )
            )
            self.deal_id = deal.id or 0
            self.owner: dict[str, str] = {}
            ledger = world.keys.sandbox
            self.provider = SandboxProvider(world.redis, ledger)
            self.slow = SandboxProvider(world.redis, ledger, delay_ms=HOLD_TTL_MS + 50)
            self.attempts = AttemptStore(world.db, world.keys.prefix)

        def till(self, *, slow: bool = False, crash: str = "") -> Till:
            provider = self.slow if slow else self.provider
            return Till(world.holds, provider, self.attempts, CrashAt(crash))

        @rule(target=holds, buyer=st.sampled_from("abcd"), qty=st.integers(1, 3))
        def reserve(self, buyer: str, qty: int) -> str:
            who = f"{self.deal_id}{buyer}"
            try:
                hold = world.run(world.holds.reserve(self.deal_id, ReserveRequest(who, qty)))
            except DomainError:
                return ""
            self.owner[hold.id] = who
            return hold.id

        @rule(hold=holds)
        def release(self, hold: str) -> None:
            if hold:
                world.run(self._quietly(world.holds.release(hold, self.owner[hold])))

        @rule(
            hold=holds,
            card=st.sampled_from([APPROVED, APPROVED, DECLINED]),
            key=st.sampled_from(["k1", "k2"]),
            crash=st.sampled_from(["", "", *CHECKOUT_POINTS]),
            slow=st.booleans(),
        )
        def pay(self, hold: str, card: str, key: str, crash: str, slow: bool) -> None:
            if not hold:
                return
            till = self.till(slow=slow, crash=crash)
            paying = pay_for_hold(
                till, hold_id=hold, buyer=self.owner[hold], card=card, attempt_key=key
            )
            # A slow charge outlasts the hold, and a sweep meanwhile takes the hold back: the
            # approved charge must then be refunded.
            work = self._with_sweep(paying, hold) if slow else paying
            with contextlib.suppress(Crashed):  # died there: the reconciler or a retry settles it
                world.run(self._quietly(work))

        @rule()
        def restart(self) -> None:
            """A process came back: its startup pass over attempts whose request died."""
            world.run(
                reconcile_once(self.till(), IdempotencyStore(world.redis, world.keys, LEASE_MS), 0)
            )

        @rule()
        def sweep(self) -> None:
            world.run(world.holds.expire(self.deal_id))

        @rule(hold=holds)
        def expire(self, hold: str) -> None:
            """Wait out one hold's deadline (by Redis's clock), then sweep."""
            if hold:
                world.run(self._outlive(hold))

        @rule()
        def stop_deal(self) -> None:
            world.run(world.holds.stop_deal(self.deal_id))

        async def _quietly(self, work: Coroutine[Any, Any, Any]) -> None:
            with contextlib.suppress(DomainError):  # refusals are part of the game
                await work

        async def _with_sweep(self, paying: Coroutine[Any, Any, Any], hold: str) -> None:
            await asyncio.gather(self._quietly(paying), self._outlive(hold))

        async def _outlive(self, hold: str) -> None:
            """Sweep as soon as the hold's deadline (which paying may move) has passed."""
            while True:
                raw = await world.redis.hget(world.keys.deal(self.deal_id).holds, hold)
                state, _, deadline, *_ = raw.split("|")
                seconds, micros = await world.redis.time()
                if state not in ("held", "paying") or seconds * 1000 + micros // 1000 > int(
                    deadline
                ):
                    break
                await asyncio.sleep(0.01)
            await world.holds.expire(self.deal_id)

        async def _books(self) -> dict[str, Any]:
            keys = world.keys.deal(self.deal_id)
            counters = await world.redis.hgetall(keys.deal)
            records = await world.redis.hgetall(keys.holds)
            buyers = await world.redis.hgetall(keys.buyers)
            entries = await world.redis.xrange(keys.orders)
            charges = [
                c
                for c in await self.provider.charges()
                if c.key.split(":", 1)[0] in records and c.status is ChargeStatus.APPROVED
            ]
            pending = [
                a.charge_key for a in await self.attempts.pending(2**62) if a.hold_id in records
            ]
            return {
                "counters": {
                    k: int(counters[k]) for k in ("available", "held", "sold", "quantity")
                },
                "holds": {h: r.split("|") for h, r in records.items()},
                "buyers": {b: int(n) for b, n in buyers.items()},
                "paid": [f for _, f in entries if f.get("type") == "order.paid"],
                "charges": charges,
                "pending": set(pending),
            }

        @invariant()
        def books_balance(self) -> None:
            if not hasattr(self, "deal_id"):
                return
            self.check(world.run(self._books()), settled=False)

        def check(self, books: dict[str, Any], *, settled: bool) -> None:
            c = books["counters"]
            assert c["available"] + c["held"] + c["sold"] == c["quantity"] == QUANTITY, c
            assert min(c["available"], c["held"], c["sold"]) >= 0, c
            live: Counter[str] = Counter()
            sold_units = 0
            sold = {h for h, fields in books["holds"].items() if fields[0] == "sold"}
            for state, qty, _, _, _, owner, _ in books["holds"].values():
                if state in ("held", "paying", "sold"):
                    live[owner] += int(qty)
                if state == "sold":
                    sold_units += int(qty)
            assert {b: n for b, n in books["buyers"].items() if n} == dict(live), books["buyers"]
            assert all(n <= LIMIT for n in live.values()), live
            assert c["sold"] == sold_units
            paid = Counter(f["hold"] for f in books["paid"])
            assert set(paid) == sold and all(n == 1 for n in paid.values()), paid
            refs = {f["hold"]: f["payment_ref"] for f in books["paid"]}
            unrefunded = [ch for ch in books["charges"] if not ch.refunded]
            for charge in unrefunded:
                hold_id = charge.key.split(":", 1)[0]
                is_the_sale = refs.get(hold_id) == charge.id
                assert is_the_sale or (not settled and charge.key in books["pending"]), charge
            for hold_id, ref in refs.items():  # each sale was paid by a live charge
                assert any(ch.id == ref for ch in unrefunded), (hold_id, ref)

        def teardown(self) -> None:
            """The end of an example: every process restarted, every attempt settled."""
            if not hasattr(self, "deal_id"):
                return
            self.restart()
            books = world.run(self._books())
            assert not books["pending"], books["pending"]
            self.check(books, settled=True)

    return Checkout


@pytest.mark.timeout(120 + EXAMPLES * 3)
def test_random_interleavings_keep_the_books(redis_url: str, database_url: str) -> None:
    world = World(redis_url, database_url)
    try:
        run_state_machine_as_test(
            machine_for(world),
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
    finally:
        world.close()
