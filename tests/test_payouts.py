"""Settlement and withdrawals (decision 0027): a delivered order's net amount becomes available
after the settlement delay, a seller withdraws it once a day, two withdrawals at once pay once,
and a crash anywhere in a payout is finished by the reconciler without paying twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update
from sqlmodel import col

from catalog.models import Shop
from checkout.faults import MONEY_POINTS
from checkout.ledger import Account
from checkout.ledger_store import balances
from checkout.models import Order
from checkout.payments import PayoutStatus, SandboxProvider
from checkout.payouts import Payouts, utc_day
from checkout.refunds import RefundAsk, refund_key
from checkout.settlement import settle_due
from kernel.clock import now_ms
from kernel.errors import DomainError
from tests.helpers import CrashAt, Crashed
from tests.stores import Stores
from tests.test_refunds import refunds_of, sold_orders

pytestmark = pytest.mark.storage

DAY_MS = 86_400_000
PAYOUT_POINTS = [p for p in MONEY_POINTS if p.startswith("payout.")]


async def delivered(stores: Stores, order: Order, at_ms: int) -> None:
    async with stores.db.session() as session:
        await session.exec(
            update(Order)
            .where(col(Order.id) == order.id)
            .values(status="delivered", delivered_ms=at_ms)
        )
        await session.commit()


async def set_payout_method(stores: Stores, shop_id: int, method: str) -> None:
    async with stores.db.session() as session:
        await session.exec(update(Shop).where(col(Shop.id) == shop_id).values(payout_method=method))
        await session.commit()


async def shop_balances(stores: Stores, shop_id: int) -> dict[Account, int]:
    async with stores.db.session() as session:
        found = await balances(await session.connection(), shop_id)
    return {account: amount for (account, _), amount in found.items()}


def payouts_of(stores: Stores, point: str = "") -> Payouts:
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    return Payouts(stores.db, provider, stores.keys.prefix, CrashAt(point))


async def test_delivered_orders_settle_after_the_delay_net_of_fee_and_refunds(
    stores: Stores,
) -> None:
    deal = await stores.live_deal(quantity=10)
    first, second = await sold_orders(stores, deal, 2, qty=2)  # 5000 each, fee 250 each
    ask = RefundAsk(key=refund_key(first.id or 0, "r"), actor="seller:1", amount=1000)
    await refunds_of(stores).refund(first.id or 0, ask)  # fee kept: 200
    now = now_ms()
    await delivered(stores, first, now - 7 * DAY_MS)
    await delivered(stores, second, now - 6 * DAY_MS)  # not yet
    assert await settle_due(stores.db, now, 7 * DAY_MS) >= 1
    books = await shop_balances(stores, deal.shop_id)
    assert books[Account.AVAILABLE] == 5000 - 1000 - 200
    assert books[Account.PENDING] == 5000 - 250
    # Once only, however often the rule runs.
    await settle_due(stores.db, now, 7 * DAY_MS)
    assert (await shop_balances(stores, deal.shop_id))[Account.AVAILABLE] == 3800
    # A refund after settlement comes out of the available balance.
    ask = RefundAsk(key=refund_key(first.id or 0, "late"), actor="seller:1", amount=500)
    await refunds_of(stores).refund(first.id or 0, ask)
    assert (await shop_balances(stores, deal.shop_id))[Account.AVAILABLE] == 3800 - 500 + 25


async def test_a_withdrawal_pays_out_the_available_balance_once_a_day(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1, qty=4)  # 10000, fee 500
    now = now_ms()
    await delivered(stores, order, now - 8 * DAY_MS)
    await settle_due(stores.db, now, 7 * DAY_MS)
    payouts = payouts_of(stores)
    with pytest.raises(DomainError) as refused:
        await payouts.withdraw(deal.shop_id, "USD", "seller:1")
    assert refused.value.code == "no_payout_method"
    await set_payout_method(stores, deal.shop_id, "acct_test_123")

    async def attempt() -> str:
        try:
            return (await payouts.withdraw(deal.shop_id, "USD", "seller:1")).status
        except DomainError as err:
            return err.code

    answers = await asyncio.gather(*(attempt() for _ in range(10)))
    assert sorted(answers).count(PayoutStatus.PAID) == 1
    assert set(answers) - {PayoutStatus.PAID} <= {"payout_limit", "nothing_to_withdraw"}
    [payout] = await payouts.of_shop(deal.shop_id)
    assert (payout.amount, payout.utc_day) == (9500, utc_day(now_ms()))
    books = await shop_balances(stores, deal.shop_id)
    assert (books[Account.AVAILABLE], books[Account.PAID_OUT]) == (0, 9500)
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    assert [p.amount for p in await provider.payouts() if p.key == payout.key] == [9500]


async def test_a_failed_payout_gives_the_money_back_and_not_the_day(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1)
    now = now_ms()
    await delivered(stores, order, now - 8 * DAY_MS)
    await settle_due(stores.db, now, 7 * DAY_MS)
    await set_payout_method(stores, deal.shop_id, "fail:closed-account")
    payouts = payouts_of(stores)
    failed = await payouts.withdraw(deal.shop_id, "USD", "seller:1")
    assert failed.status == PayoutStatus.FAILED
    assert (await shop_balances(stores, deal.shop_id))[Account.AVAILABLE] == 2375
    await set_payout_method(stores, deal.shop_id, "acct_ok")
    paid = await payouts.withdraw(deal.shop_id, "USD", "seller:1")
    assert (paid.status, paid.amount) == (PayoutStatus.PAID, 2375)
    with pytest.raises(DomainError) as refused:
        await payouts.withdraw(deal.shop_id, "USD", "seller:1")
    assert refused.value.code == "nothing_to_withdraw"


@pytest.mark.parametrize("point", PAYOUT_POINTS)
async def test_a_crash_in_a_payout_is_finished_once(stores: Stores, point: str) -> None:
    deal = await stores.live_deal(quantity=10)
    [order] = await sold_orders(stores, deal, 1)
    now = now_ms()
    await delivered(stores, order, now - 8 * DAY_MS)
    await settle_due(stores.db, now, 7 * DAY_MS)
    await set_payout_method(stores, deal.shop_id, "acct_ok")
    with pytest.raises(Crashed):
        await payouts_of(stores, point).withdraw(deal.shop_id, "USD", "seller:1")
    assert await payouts_of(stores).finish_pending(lease_ms=0, now=now_ms()) == 1
    [payout] = await payouts_of(stores).of_shop(deal.shop_id)
    assert payout.status == PayoutStatus.PAID
    provider = SandboxProvider(stores.redis, stores.keys.sandbox)
    assert [p.amount for p in await provider.payouts() if p.key == payout.key] == [2375]
    books = await shop_balances(stores, deal.shop_id)
    assert (books[Account.AVAILABLE], books[Account.PAID_OUT]) == (0, 2375)
