"""Refunds and cancellations move the charge, the SKU's stock, a live deal's counters and the
ledger (decision 0027), once per key however they race, and a crash at any point of a refund is
finished by the reconciler without refunding twice. Real Redis (Valkey) and real SQL."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import pytest
from sqlalchemy import func, update
from sqlalchemy import select as core_select
from sqlmodel import col, select

from catalog.models import Deal, Sku
from checkout import deals
from checkout.faults import MONEY_POINTS
from checkout.holds import ReserveRequest
from checkout.ledger import Account
from checkout.models import LedgerEntry, Order, Refund
from checkout.order_sweeper import sweep_orders_once
from checkout.orders import OrderStatus
from checkout.payments import RefundStatus, SandboxProvider
from checkout.refunds import DealRestock, RefundAsk, Refunds, refund_key
from kernel.clock import now_ms
from kernel.errors import DomainError
from tests.helpers import CrashAt, Crashed
from tests.stores import Stores, drain
from tests.test_webhooks import sold_order

pytestmark = pytest.mark.storage

PRICE = 2500  # make_live_deal's deal price


@dataclass
class Sold:
    order: Order
    charge_id: str


async def buy(stores: Stores, provider: SandboxProvider, deal: Deal, qty: int = 1) -> str:
    """One buyer reserves, is really charged by the sandbox, and the hold is sold: its id."""
    buyer = secrets.token_hex(6)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(buyer, qty))
    terms = await stores.holds.begin_payment(hold.id, buyer, "a1")
    charge = await provider.charge(
        key=f"{hold.id}:k", amount=terms.amount, currency="USD", card="4242424242424242"
    )
    await stores.holds.commit(hold.id, buyer, charge.id, "a1")
    return hold.id


async def sold_orders(stores: Stores, deal: Deal, n: int, qty: int = 1) -> list[Order]:
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    holds = [await buy(stores, provider, deal, qty) for _ in range(n)]
    await drain(stores.pipeline())
    async with stores.db.session() as session:
        found = await session.exec(
            select(Order).where(col(Order.hold_id).in_(holds)).order_by(col(Order.id))
        )
        return list(found.all())


def refunds_of(stores: Stores, point: str = "") -> Refunds:
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    return Refunds(stores.db, stores.holds, provider, stores.keys.prefix, CrashAt(point))


async def order_of(stores: Stores, order_id: int) -> Order:
    async with stores.db.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order


async def sku_of(stores: Stores, sku_id: int) -> Sku:
    async with stores.db.session() as session:
        sku = await session.get(Sku, sku_id)
        assert sku is not None
        return sku


async def balances(stores: Stores, deal: Deal) -> dict[str, int]:
    """Every account's sum over the deal's shop's entries; each transaction must balance."""
    mine = col(LedgerEntry.shop_id) == deal.shop_id
    async with stores.db.session() as session:
        conn = await session.connection()
        rows = (
            await conn.execute(
                core_select(col(LedgerEntry.account), func.sum(col(LedgerEntry.amount)))
                .where(mine)
                .group_by(col(LedgerEntry.account))
            )
        ).all()
        unbalanced = (
            await conn.execute(
                core_select(col(LedgerEntry.txn))
                .where(mine)
                .group_by(col(LedgerEntry.txn))
                .having(func.sum(col(LedgerEntry.amount)) != 0)
            )
        ).all()
    assert unbalanced == []
    return {account: int(total) for account, total in rows}


async def charge_refunded(stores: Stores, charge_id: str) -> int:
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    found = [c for c in await provider.charges() if c.id == charge_id]
    assert len(found) == 1
    return found[0].amount_refunded


async def test_a_cancel_refunds_the_charge_restocks_the_live_deal_and_balances(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1, qty=2)
    before = await stores.holds.counters(deal.id or 0)
    assert before is not None and before.sold == 2
    sku_before = await sku_of(stores, deal.sku_id)

    refund = await refunds_of(stores).cancel(order.id or 0, "seller:1", "out of stock")

    assert (refund.status, refund.amount, refund.units) == (RefundStatus.SUCCEEDED, 5000, 2)
    assert refund.deal_restock == DealRestock.DEAL
    assert await charge_refunded(stores, order.payment_ref) == 5000
    after = await order_of(stores, order.id or 0)
    assert (after.status, after.refunded, after.restocked_units) == ("cancelled", 5000, 2)
    counters = await stores.holds.counters(deal.id or 0)
    assert counters is not None
    assert (counters.sold, counters.available) == (0, before.available + 2)
    sku = await sku_of(stores, deal.sku_id)
    # Back in stock and in the deal's allocation: the deal can sell them again.
    assert (sku.stock, sku.allocated) == (sku_before.stock + 2, sku_before.allocated + 2)
    books = await balances(stores, deal)
    # A fully refunded order leaves nothing with anyone: the fee went back too.
    assert books.get(Account.PENDING, 0) == 0 and books.get(Account.FEES, 0) == 0
    assert books.get(Account.PROVIDER, 0) == 0 and books.get(Account.REFUNDS, 0) == 0
    # The deal sells the units again, and the audit agrees with every counter.
    audit = await stores.audit(deal.id or 0)
    assert audit.ok, audit


async def test_a_refund_after_the_deal_ended_restocks_the_sku_only(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1)
    async with stores.db.session() as session:
        stored = await session.get(Deal, deal.id)
        assert stored is not None
        await deals.stop(session, stores.holds, stored)
    sku_before = await sku_of(stores, deal.sku_id)
    ask = RefundAsk(key=refund_key(order.id or 0, "k"), actor="seller:1", units=1)
    refund = await refunds_of(stores).refund(order.id or 0, ask)
    assert refund.deal_restock == DealRestock.NONE  # the deal was not live
    sku = await sku_of(stores, deal.sku_id)
    assert (sku.stock, sku.allocated) == (sku_before.stock + 1, sku_before.allocated)
    counters = await stores.holds.counters(deal.id or 0)
    assert counters is not None and counters.sold == 1


async def test_a_partial_refund_without_restock_keeps_the_status_and_the_fee_share(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1, qty=2)  # 5000, fee 5 % = 250
    refunds = refunds_of(stores)
    ask = RefundAsk(key=refund_key(order.id or 0, "a"), actor="seller:1", amount=1000)
    refund = await refunds.refund(order.id or 0, ask)
    assert (refund.amount, refund.fee_returned, refund.units) == (1000, 50, 0)
    after = await order_of(stores, order.id or 0)
    assert (after.status, after.refunded, after.restocked_units) == ("paid", 1000, 0)
    books = await balances(stores, deal)
    assert books[Account.FEES] == -200  # 5 % of the 4000 the buyer kept
    assert books[Account.PENDING] == -3800  # the shop is owed 4000 less its fee
    # The rest, in two refunds: everything given back, the order refunded, the fee all gone.
    for key, amount in (("b", 2999), ("c", 1001)):
        ask = RefundAsk(key=refund_key(order.id or 0, key), actor="seller:1", amount=amount)
        await refunds.refund(order.id or 0, ask)
    after = await order_of(stores, order.id or 0)
    assert (after.status, after.refunded) == ("refunded", 5000)
    books = await balances(stores, deal)
    assert books.get(Account.FEES, 0) == 0 and books.get(Account.PENDING, 0) == 0
    assert await charge_refunded(stores, order.payment_ref) == 5000


async def test_refusals_change_nothing(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1)
    refunds = refunds_of(stores)
    oid = order.id or 0
    refusals = [
        (RefundAsk(key="x1", actor="s", amount=PRICE + 1), "refund_exceeds_paid"),
        (RefundAsk(key="x2", actor="s", amount=0), "invalid_amount"),
        (RefundAsk(key="x3", actor="s", amount=-5), "invalid_amount"),
        (RefundAsk(key="x4", actor="s", amount=100, units=2), "restock_exceeds_units"),
    ]
    for ask, code in refusals:
        with pytest.raises(DomainError) as refused:
            await refunds.refund(oid, ask)
        assert refused.value.code == code
    await refunds.cancel(oid, "s")
    with pytest.raises(DomainError) as refused:
        await refunds.refund(oid, RefundAsk(key="x5", actor="s", amount=1))
    assert refused.value.code == "order_not_refundable"
    async with stores.db.session() as session:
        rows = (await session.exec(select(Refund).where(col(Refund.order_id) == oid))).all()
    assert [r.key for r in rows] == [f"cancel:{oid}"]
    assert await charge_refunded(stores, order.payment_ref) == PRICE


async def test_twenty_refunds_at_once_refund_once(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    same_key, many_keys = await sold_orders(stores, deal, 2)
    refunds = refunds_of(stores)

    async def attempt(order: Order, key: str) -> str:
        ask = RefundAsk(key=refund_key(order.id or 0, key), actor="seller:1", units=1)
        try:
            return (await refunds.refund(order.id or 0, ask)).status
        except DomainError as err:
            return err.code

    one_key = await asyncio.gather(*(attempt(same_key, "double-click") for _ in range(20)))
    assert one_key == [RefundStatus.SUCCEEDED] * 20
    keys = await asyncio.gather(*(attempt(many_keys, f"k{n}") for n in range(20)))
    assert sorted(keys).count(RefundStatus.SUCCEEDED) == 1
    # The losers are told the order has nothing left: fully refunded, or not this much left.
    assert set(keys) - {RefundStatus.SUCCEEDED} <= {"refund_exceeds_paid", "order_not_refundable"}
    for order in (same_key, many_keys):
        after = await order_of(stores, order.id or 0)
        assert (after.refunded, after.restocked_units) == (PRICE, 1)
        assert await charge_refunded(stores, order.payment_ref) == PRICE
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    charges = {same_key.payment_ref, many_keys.payment_ref}
    assert len([r for r in await provider.refunds() if r.charge in charges]) == 2
    await balances(stores, deal)
    audit = await stores.audit(deal.id or 0)
    assert audit.ok, audit


@pytest.mark.parametrize("point", [p for p in MONEY_POINTS if p.startswith("refund.")])
async def test_a_crash_anywhere_in_a_refund_is_finished_once_by_the_reconciler(
    stores: Stores, point: str
) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1, qty=2)
    with pytest.raises(Crashed):
        await refunds_of(stores, point).cancel(order.id or 0, "seller:1")
    # The order rules' pass (lease 0: the request is known dead) finishes what the crash left.
    await sweep_orders_once(refunds_of(stores), lease_ms=0)
    [refund] = await refunds_of(stores).of_order(order.id or 0)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.deal_restock == DealRestock.DEAL
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    mine = [r.amount for r in await provider.refunds() if r.charge == order.payment_ref]
    assert mine == [5000]  # one refund, never two
    assert await charge_refunded(stores, order.payment_ref) == 5000
    counters = await stores.holds.counters(deal.id or 0)
    assert counters is not None and counters.sold == 0  # the units went back once
    # A retry by the seller after the crash answers from the same refund.
    again = await refunds_of(stores).cancel(order.id or 0, "seller:1")
    assert again.id == refund.id
    books = await balances(stores, deal)
    assert books.get(Account.REFUNDS, 0) == 0 and books.get(Account.PROVIDER, 0) == 0
    audit = await stores.audit(deal.id or 0)
    assert audit.ok, audit


async def test_the_sweeper_cancels_orders_unshipped_past_their_limit(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    late, shipped, on_time = await sold_orders(stores, deal, 3)
    # The first two reached their limit at the dawn of time (the database holds other tests'
    # orders, whose limits are days from now): a pass at 1 ms finds only them.
    async with stores.db.session() as session:
        await session.exec(
            update(Order).where(col(Order.id).in_([late.id, shipped.id])).values(ship_limit_ms=0)
        )
        await session.exec(
            update(Order)
            .where(col(Order.id) == shipped.id)
            .values(status=OrderStatus.SHIPPED.value)
        )
        await session.commit()
    report = await sweep_orders_once(refunds_of(stores), lease_ms=60_000, now=1)
    assert report.cancelled == 1
    statuses = [(await order_of(stores, o.id or 0)).status for o in (late, shipped, on_time)]
    assert statuses == ["cancelled", "shipped", "paid"]
    cancelled = await order_of(stores, late.id or 0)
    assert cancelled.refunded == cancelled.total
    assert await charge_refunded(stores, late.payment_ref) == late.total
    # Again: nothing more to do.
    assert (await sweep_orders_once(refunds_of(stores), 60_000, now=1)).cancelled == 0


@pytest.mark.parametrize("closing", ["cancel", "refund"])
async def test_money_a_failed_refund_left_owed_on_a_closed_order_can_be_refunded(
    stores: Stores, closing: str
) -> None:
    """A cancel (or a full refund) the provider then fails leaves the order cancelled (or
    refunded) with the money owed: a later refund of what is left is taken, and the order
    keeps its status."""
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    refunds = Refunds(stores.db, stores.holds, provider, stores.keys.prefix)
    order = await sold_order(stores, provider)  # its refunds stay pending until decided
    if closing == "cancel":
        first = await refunds.cancel(order.id or 0, "seller:1", "out of stock")
    else:
        first = await refunds.refund(
            order.id or 0, RefundAsk(key=refund_key(order.id or 0, "r1"), actor="seller:1")
        )
    assert first.status == RefundStatus.PENDING
    assert await provider.finish_refund(first.provider_ref, RefundStatus.FAILED)
    await refunds.finish_pending(lease_ms=0, now=now_ms())
    owed = await order_of(stores, order.id or 0)
    closed = OrderStatus.CANCELLED if closing == "cancel" else OrderStatus.REFUNDED
    assert (owed.status, owed.refunded) == (closed, 0)

    again = await refunds.refund(
        order.id or 0, RefundAsk(key=refund_key(order.id or 0, "again"), actor="seller:1")
    )
    assert (again.status, again.amount) == (RefundStatus.PENDING, order.total)
    assert await provider.finish_refund(again.provider_ref, RefundStatus.SUCCEEDED)
    await refunds.finish_pending(lease_ms=0, now=now_ms())
    done = await order_of(stores, order.id or 0)
    assert (done.status, done.refunded) == (closed, order.total)
    [charge] = [c for c in await provider.charges() if c.id == order.payment_ref]
    assert charge.amount_refunded == order.total
    with pytest.raises(DomainError) as nothing_left:
        await refunds.refund(
            order.id or 0, RefundAsk(key=refund_key(order.id or 0, "third"), actor="seller:1")
        )
    assert nothing_left.value.code == "order_not_refundable"
