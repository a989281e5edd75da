"""Batched reservations: many concurrent buyers, one Redis call per batch, each buyer its own
answer, and nothing oversold."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from checkout.batcher import ReserveBatcher
from checkout.holds import Hold, HoldStore, ReserveRequest
from kernel.db import Database
from kernel.errors import DomainError
from tests.conftest import SellerAccount
from tests.helpers import make_live_deal, outcome

pytestmark = pytest.mark.storage


class CountingStore(HoldStore):
    """The real store, counting its round trips (the thing under test is the batcher)."""

    calls = 0

    async def reserve_many(
        self, deal_id: int, requests: list[ReserveRequest]
    ) -> list[Hold | DomainError]:
        self.calls += 1
        return await super().reserve_many(deal_id, requests)


async def attempt(batcher: ReserveBatcher, deal_id: int, req: ReserveRequest) -> Hold | str:
    return await outcome(batcher.reserve(deal_id, req))


async def test_a_storm_is_served_in_few_calls_without_overselling(
    db: Database, private_holds: HoldStore, seller: SellerAccount
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=100, limit=1)
    store = CountingStore(private_holds.redis, private_holds.keys)
    batcher = ReserveBatcher(store, max_batch=64)
    outcomes = await asyncio.gather(
        *[
            attempt(batcher, deal.id or 0, ReserveRequest(secrets.token_hex(6), 1))
            for _ in range(1000)
        ]
    )
    holds = [o for o in outcomes if isinstance(o, Hold)]
    assert len(holds) == 100
    assert len({h.id for h in holds}) == 100
    assert {o for o in outcomes if isinstance(o, str)} == {"sold_out"}
    assert store.calls <= 1000 // 64 + 2  # batched, not one call per buyer
    state = await private_holds.snapshot(deal.id or 0)
    assert state is not None and (state.available, state.held) == (0, 100)


async def test_a_failed_call_fails_only_its_batch(
    db: Database, private_holds: HoldStore, seller: SellerAccount, redis_url: str
) -> None:
    deal = await make_live_deal(db, private_holds, seller, quantity=10)
    broken = Redis(host="127.0.0.1", port=1)  # nothing listens on port 1
    batcher = ReserveBatcher(HoldStore(broken, private_holds.keys))
    with pytest.raises(RedisConnectionError):
        await batcher.reserve(deal.id or 0, ReserveRequest("b", 1))
    await broken.aclose()
    working = ReserveBatcher(private_holds)
    assert (await working.reserve(deal.id or 0, ReserveRequest("b", 1))).qty == 1
