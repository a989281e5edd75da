"""A shop's cart holds in Redis (lua/shelf.lua): concurrent checkouts of one shop go to Redis
together (one lc_shelf_hold_many call per batch), each decided on its own, nothing oversold; and
the per-address cap counts every unit of a SKU held from one client address until the hold
closes or sells."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from catalog.models import Sku
from checkout.keys import Keyspace
from checkout.shelf import HoldAsk, Line, Refusal, ShelfHold, ShelfStore
from checkout.shelving import Shelving
from kernel.db import Database
from tests.conftest import SellerAccount
from tests.helpers import make_sku, until

pytestmark = pytest.mark.storage

CAP = 3


class CountingShelf(ShelfStore):
    """The real shelf, counting its hold calls (the thing under test is their batching)."""

    calls = 0

    async def hold_many(self, shop_id: int, asks: list[HoldAsk]) -> list[ShelfHold | Refusal]:
        self.calls += 1
        return await super().hold_many(shop_id, asks)


@pytest.fixture
async def shelf(redis: Redis, keys: Keyspace) -> CountingShelf:
    store = CountingShelf(redis, keys, hold_ttl_ms=60_000, pay_ttl_ms=60_000, address_cap=CAP)
    await store.install()
    return store


async def shelved(db: Database, shelf: ShelfStore, seller: SellerAccount, stock: int) -> Sku:
    sku = await make_sku(db, seller, stock=stock)
    async with db.session() as session:
        assert await Shelving(shelf).fill(session, [sku.id or 0]) == stock
    return sku


async def hold(
    shelf: ShelfStore, skus: list[Sku], buyer: str, address: str = "", qty: int = 1
) -> ShelfHold | Refusal:
    lines = [Line(sku.id or 0, qty, sku.list_price) for sku in skus]
    return await shelf.hold(
        skus[0].shop_id, buyer, "", lines, priced_with=("", "USD", ""), address=address
    )


async def test_a_checkout_storm_is_held_in_few_calls_and_never_oversold(
    db: Database, shelf: CountingShelf, seller: SellerAccount
) -> None:
    scarce = await shelved(db, shelf, seller, stock=40)
    plenty = await shelved(db, shelf, seller, stock=1000)
    answers = await asyncio.gather(
        *[hold(shelf, [scarce, plenty], secrets.token_hex(6)) for _ in range(300)]
    )
    held = [a for a in answers if isinstance(a, ShelfHold)]
    refused = [a for a in answers if isinstance(a, Refusal)]
    assert len(held) == 40 and len({h.id for h in held}) == 40
    assert {r.word for r in refused} == {"short"}
    assert shelf.calls < 300 // 10  # batched: far fewer calls than checkouts
    stock = await shelf.stock(scarce.shop_id, [scarce.id or 0, plenty.id or 0])
    assert [(s.available, s.held) for s in stock.values()] == [(0, 40), (960, 40)]


async def test_one_address_holds_at_most_the_cap_of_a_sku(
    db: Database, shelf: CountingShelf, seller: SellerAccount
) -> None:
    sku, other = await shelved(db, shelf, seller, 50), await shelved(db, shelf, seller, 50)
    answers = await asyncio.gather(
        *[hold(shelf, [sku], secrets.token_hex(6), "203.0.113.7") for _ in range(20)]
    )
    assert sum(isinstance(a, ShelfHold) for a in answers) == CAP
    over = [a for a in answers if isinstance(a, Refusal)]
    assert {r.word for r in over} == {"address_hold_limit"}
    assert over[0].detail == (str(CAP), f"{sku.id}:{CAP}")
    # Another address, another SKU, or no address (a caller inside livecart) is not capped.
    assert isinstance(await hold(shelf, [sku], "b", "203.0.113.8"), ShelfHold)
    assert isinstance(await hold(shelf, [other], "b", "203.0.113.7", qty=CAP), ShelfHold)
    assert isinstance(await hold(shelf, [sku], "b", "", qty=10), ShelfHold)
    # The whole hold is refused when one line is over: nothing of the other line is held.
    both = await hold(shelf, [sku, other], "b", "203.0.113.8", qty=CAP)
    assert isinstance(both, Refusal) and both.detail == (str(CAP), f"{sku.id}:1")
    stock = await shelf.stock(sku.shop_id, [sku.id or 0, other.id or 0])
    assert [s.held for s in stock.values()] == [CAP + 1 + 10, CAP]


async def test_a_released_or_sold_hold_stops_counting_against_its_address(
    db: Database, shelf: CountingShelf, seller: SellerAccount, redis: Redis, keys: Keyspace
) -> None:
    sku = await shelved(db, shelf, seller, 50)
    address = "198.51.100.4"
    first = await hold(shelf, [sku], "a", address, qty=CAP)
    assert isinstance(first, ShelfHold)
    assert isinstance(await hold(shelf, [sku], "b", address), Refusal)
    assert await shelf.release(first.id, "a") == "ok"
    paid = await hold(shelf, [sku], "b", address, qty=CAP)
    assert isinstance(paid, ShelfHold)
    assert not isinstance(await shelf.begin_payment(paid.id, "b", "try-1"), str)
    assert await shelf.commit(paid.id, "b", "pay_1", "try-1", "") == "ok"
    assert isinstance(await hold(shelf, [sku], "c", address, qty=CAP), ShelfHold)
    shelf_keys = keys.shelf(sku.shop_id)
    assert await redis.hget(shelf_keys.addresses, f"{address}|{sku.id}") == str(CAP)
    assert await redis.hlen(shelf_keys.hold_addresses) == 1  # only the live hold's


async def test_a_charge_that_outlasts_the_pay_window_sells_nothing(
    db: Database, redis: Redis, keys: Keyspace, seller: SellerAccount
) -> None:
    """No sweeper closes a shelf's holds on time, so the commit checks the clock: a charge
    finishing after the hold's pay window is refused (and refunded by the checkout)."""
    shelf = ShelfStore(redis, keys, hold_ttl_ms=200, pay_ttl_ms=0)
    await shelf.install()
    sku = await shelved(db, shelf, seller, stock=5)
    held = await hold(shelf, [sku], "late", qty=2)
    assert isinstance(held, ShelfHold)
    assert not isinstance(await shelf.begin_payment(held.id, "late", "try-1"), str)

    async def past() -> bool:  # by Redis's clock, which the hold's expiry is on
        seconds, micros = await redis.time()
        return seconds * 1000 + micros // 1000 > held.expires_ms

    await until(past, "the pay window is over")
    assert await shelf.commit(held.id, "late", "pay_1", "try-1", "") == "hold_expired"
    (stock,) = (await shelf.stock(sku.shop_id, [sku.id or 0])).values()
    assert (stock.available, stock.held, stock.sold) == (5, 0, 0)


async def test_a_replayed_hold_answers_its_own_lines_not_the_ones_asked_again(
    db: Database, shelf: CountingShelf, seller: SellerAccount
) -> None:
    # A fresh hold's answer reuses the asked lines instead of decoding its echo; a replay
    # must still answer what it held.
    one, two = await shelved(db, shelf, seller, 10), await shelved(db, shelf, seller, 10)
    asked = [Line(one.id or 0, 2, one.list_price)]
    first = await shelf.hold(one.shop_id, "a", "r1", asked, priced_with=("", "USD", ""))
    assert isinstance(first, ShelfHold) and first.lines == tuple(asked) and not first.replayed
    other = [Line(one.id or 0, 1, one.list_price), Line(two.id or 0, 3, two.list_price)]
    again = await shelf.hold(one.shop_id, "a", "r1", other, priced_with=("", "USD", ""))
    assert isinstance(again, ShelfHold) and again.replayed
    assert (again.id, again.lines, again.qty) == (first.id, tuple(asked), 2)
