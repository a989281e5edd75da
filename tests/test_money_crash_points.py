"""Kill ``livecart serve`` with SIGKILL at every point of a delivery, a refund and a withdrawal
where a crash changes what must happen next (checkout/faults.py MONEY_POINTS), restart it, and
check what the seller, the creator and the books see:

- a delivery of an order sold in a creator's room: the seller's retry is told the order is
  already delivered; the creator's commission was earned once (one ledger transaction, of the
  plan's rate on the order);
- a refund of such an order, delivered first: the seller's retry (same Idempotency-Key)
  answers the refund, succeeded, within 10 s of the restart; the provider holds one refund
  under its key, of the order's total; the unit is back in the deal once; the order says
  refunded; the commission was earned once and given back once, to 0;
- a withdrawal: the restarted server's money pass finishes the payout within 10 s (its request
  died with the process, so no retry can name it); the provider holds one payout under its key,
  of the payout's amount; the shop's available balance is 0 and its paid-out balance the amount;
  a second withdrawal the same day is refused;
- every ledger transaction of the shop balances.

One server per point, all points at once, as tests/test_crash_points.py does for the checkout
(whose servers, buyers and retries this module reuses). ``LIVECART_CRASH_REPS`` repetitions per
point (2 by default; CI runs 20 in its own step).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, update
from sqlalchemy import select as core_select
from sqlmodel import col, select

from checkout.audit import settled_audit
from checkout.faults import MONEY_POINTS
from checkout.holds import HoldStore
from checkout.keys import Keyspace
from checkout.ledger import Account
from checkout.models import AffiliateAttribution, LedgerEntry, Order, Payout, Refund
from checkout.payments import PayoutStatus, RefundStatus, SandboxProvider
from kernel.clock import now_ms
from kernel.db import Database
from tests import forked
from tests.conftest import PREFIX, SellerAccount
from tests.helpers import make_live_deal, make_seller, until
from tests.test_affiliates import RATE, creator_deal, creator_room, offered
from tests.test_crash_points import REPS, Lane, buy, checkout, lane_env, start

pytestmark = [pytest.mark.storage, pytest.mark.crash, pytest.mark.slow]

FINAL_WITHIN_S = 10.0
DAY_MS = 86_400_000
PRICE = 9000  # tests/test_affiliates.py creator_deal's price: one unit per order
COMMISSION = PRICE * RATE // 10_000  # the plan's share of a delivered order


def money_env(point: str, prefix: str) -> dict[str, str]:
    # The money pass (pending refunds and payouts, settlement) runs every 0.3 s.
    return {**lane_env(point, prefix), "LIVECART_MONEY_INTERVAL_S": "0.3"}


async def paid_order(client: httpx.AsyncClient, base: str, db: Database, deal_id: int) -> Order:
    """A buyer's paid order of one unit, once the pipeline has written it to SQL."""
    token, hold_id, key = await buy(client, base, deal_id)
    answer = await checkout(client, base, token, hold_id, key)
    assert answer.status_code == 201, answer.text
    found: list[Order] = []

    async def written() -> bool:
        async with db.session() as session:
            order = (await session.exec(select(Order).where(Order.hold_id == hold_id))).first()
        found[:] = [order] if order is not None else []
        return bool(found)

    await until(written, f"the order of hold {hold_id} in SQL")
    return found[0]


async def died(lane: Lane, first: Awaitable[httpx.Response]) -> None:
    """The request that reaches the armed point kills the server: wait for it."""
    server = lane.server
    assert server is not None
    try:
        answer: httpx.Response | None = await first
    except httpx.TransportError:
        answer = None
    code = await asyncio.to_thread(forked.exit_code, server.process, 60)
    assert code == -9, f"{lane.point}: exited with {code}, not SIGKILL ({answer})"
    assert not lane.trigger.exists()
    lane.crashes += 1


async def final(ask: Callable[[], Awaitable[httpx.Response | None]]) -> httpx.Response:
    """Ask until the restarted server gives an answer that is not "try again"."""
    while True:
        try:
            answer = await ask()
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code < 500:
            if answer.status_code != 409:
                return answer
            if answer.json()["error"]["code"] != "request_in_progress":
                return answer
        await asyncio.sleep(0.1)


# -- commissions ------------------------------------------------------------------------------


async def creator_sale(lane: Lane, db: Database, seller: SellerAccount) -> int:
    """A live deal of REPS units of ``seller``'s product in a creator's room under the shop's
    affiliate plan: its orders are attributed to the creator by the server."""
    assert lane.server is not None
    async with httpx.AsyncClient(base_url=lane.server.base_url, timeout=30) as http:
        o = await offered(http, db, seller)
        room = await creator_room(http, o)
        return await creator_deal(http, o, room, quantity=REPS)


async def move(
    client: httpx.AsyncClient, lane: Lane, seller: SellerAccount, order_id: int, action: str
) -> httpx.Response:
    assert lane.server is not None
    body = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"} if action == "ship" else {}
    return await client.post(
        f"{lane.server.base_url}/api/orders/{order_id}/{action}", json=body, headers=seller.headers
    )


async def shipped_order(
    client: httpx.AsyncClient, lane: Lane, db: Database, seller: SellerAccount, deal_id: int
) -> Order:
    """A paid order of the creator's deal, attributed, confirmed and shipped."""
    assert lane.server is not None
    order = await paid_order(client, lane.server.base_url, db, deal_id)
    async with db.session() as session:
        attribution = await session.get(AffiliateAttribution, order.id)
    assert attribution is not None and attribution.base == PRICE, (lane.point, attribution)
    for action in ("confirm", "ship"):
        moved = await move(client, lane, seller, order.id or 0, action)
        assert moved.status_code == 200, (lane.point, moved.text)
    return order


async def delivery_repetition(
    lane: Lane, seller: SellerAccount, db: Database, deal_id: int, urls: tuple[str, str]
) -> int:
    """One delivery through a crash after its commit: the order's id."""
    async with httpx.AsyncClient(timeout=30) as client:
        order = await shipped_order(client, lane, db, seller, deal_id)
        lane.trigger.write_text(lane.point)
        await died(lane, move(client, lane, seller, order.id or 0, "deliver"))
        lane.server = await start(lane, *urls)
        began = time.monotonic()
        answer = await asyncio.wait_for(
            final(lambda: move(client, lane, seller, order.id or 0, "deliver")), FINAL_WITHIN_S
        )
        lane.waits.append(time.monotonic() - began)
    # The retry is told what happened: the order is delivered already.
    assert answer.status_code == 409, (lane.point, answer.text)
    error = answer.json()["error"]
    assert (error["code"], error["details"]["status"]) == ("invalid_transition", "delivered")
    return order.id or 0


async def commission_txns(db: Database, order_id: int) -> dict[str, int]:
    """The order's commission postings: per ledger transaction, what moved to the creator
    (credits to the commissions account are negative)."""
    async with db.session() as session:
        entries = (
            await session.exec(
                select(LedgerEntry).where(
                    col(LedgerEntry.reference) == f"order:{order_id}",
                    col(LedgerEntry.account) == Account.COMMISSIONS.value,
                )
            )
        ).all()
    moved: dict[str, int] = {}
    for entry in entries:
        moved[entry.txn] = moved.get(entry.txn, 0) - entry.amount
    return moved


async def check_deliveries(lane: Lane, db: Database, order_ids: list[int]) -> None:
    async with db.session() as session:
        orders = (await session.exec(select(Order).where(col(Order.id).in_(order_ids)))).all()
    assert len(orders) == len(order_ids) == REPS
    assert all(o.status == "delivered" for o in orders), (lane.point, orders)
    for order_id in order_ids:
        assert await commission_txns(db, order_id) == {f"commission:{order_id}": COMMISSION}


# -- refunds ----------------------------------------------------------------------------------


async def refund_repetition(
    lane: Lane, seller: SellerAccount, db: Database, deal_id: int, urls: tuple[str, str]
) -> int:
    """One delivered order refunded in full, restocking its unit, through a crash: the order's
    id. The creator earned its commission on delivery; the refund gives it back."""
    async with httpx.AsyncClient(timeout=30) as client:
        order = await shipped_order(client, lane, db, seller, deal_id)
        delivered = await move(client, lane, seller, order.id or 0, "deliver")
        assert delivered.status_code == 200, (lane.point, delivered.text)
        key = "refund-" + secrets.token_hex(6)

        def ask() -> Awaitable[httpx.Response]:
            assert lane.server is not None
            return client.post(
                f"{lane.server.base_url}/api/orders/{order.id}/refund",
                json={"restock": 1, "reason": "crash test"},
                headers={**seller.headers, "Idempotency-Key": key},
            )

        lane.trigger.write_text(lane.point)
        await died(lane, ask())
        lane.server = await start(lane, *urls)
        began = time.monotonic()
        answer = await asyncio.wait_for(final(ask), FINAL_WITHIN_S)
        lane.waits.append(time.monotonic() - began)
    assert answer.status_code == 200, (lane.point, answer.text)
    refund = answer.json()["refund"]
    assert (refund["status"], refund["amount"]) == ("succeeded", PRICE), (lane.point, refund)
    assert answer.json()["order"]["status"] == "refunded", (lane.point, answer.text)
    return order.id or 0


async def check_refunds(
    lane: Lane, redis: Redis, db: Database, deal_id: int, order_ids: list[int]
) -> None:
    async with db.session() as session:
        orders = (await session.exec(select(Order).where(col(Order.id).in_(order_ids)))).all()
        refunds = (
            await session.exec(select(Refund).where(col(Refund.order_id).in_(order_ids)))
        ).all()
    assert len(orders) == len(order_ids) == REPS
    assert len(refunds) == REPS, (lane.point, refunds)  # one per order, not one per attempt
    assert all(r.status == RefundStatus.SUCCEEDED for r in refunds), (lane.point, refunds)
    assert all((o.refunded, o.restocked_units) == (o.total, 1) for o in orders), lane.point
    provider = SandboxProvider(redis, Keyspace(lane.prefix).sandbox)
    given = [r for r in await provider.refunds() if r.key in {r.key for r in refunds}]
    assert sorted(r.key for r in given) == sorted(r.key for r in refunds), lane.point
    charges = {c.id: c for c in await provider.charges()}
    for order in orders:
        assert charges[order.payment_ref].amount_refunded == order.total, (lane.point, order)
    audit = await settled_audit(redis, db, Keyspace(lane.prefix), deal_id, wait_s=30)
    assert audit.ok, (lane.point, audit.json())
    # Every unit is back in the deal, once: nothing held or sold is left of these orders.
    counters = await HoldStore(redis, Keyspace(lane.prefix)).counters(deal_id)
    assert counters is not None
    assert (counters.sold, counters.held) == (0, 0), (lane.point, counters)
    assert counters.available == counters.quantity, (lane.point, counters)
    # The creator's commission: earned on delivery once, given back with the refund once.
    refund_of = {r.order_id: r.id for r in refunds}
    for order_id in order_ids:
        assert await commission_txns(db, order_id) == {
            f"commission:{order_id}": COMMISSION,
            f"commission:{order_id}:refund:{refund_of[order_id]}": -COMMISSION,
        }, lane.point


# -- withdrawals ------------------------------------------------------------------------------


async def settled_shop(
    lane: Lane, db: Database, holds: HoldStore, client: httpx.AsyncClient
) -> SellerAccount:
    """A new shop with a payout method and one delivered order the server has settled."""
    assert lane.server is not None
    owner = await make_seller(db, "Crash Seller", payout_method="acct_crash")
    deal = await make_live_deal(db, holds, owner, quantity=1, limit=1)
    order = await paid_order(client, lane.server.base_url, db, deal.id or 0)
    async with db.session() as session:
        await session.exec(
            update(Order)
            .where(col(Order.id) == order.id)
            .values(status="delivered", delivered_ms=now_ms() - 8 * DAY_MS)
        )
        await session.commit()

    async def settled() -> bool:
        async with db.session() as session:
            found = await session.get(Order, order.id)
            return found is not None and found.settled_ms is not None

    await until(settled, f"{lane.point}: order {order.id} settled by the money pass")
    return owner


async def payout_repetition(
    lane: Lane, db: Database, holds: HoldStore, urls: tuple[str, str]
) -> int:
    """One withdrawal through a crash: the shop's id."""
    assert lane.server is not None
    async with httpx.AsyncClient(timeout=30) as client:
        owner = await settled_shop(lane, db, holds, client)
        shop_id = owner.shop.id or 0
        lane.trigger.write_text(lane.point)
        await died(
            lane,
            client.post(
                f"{lane.server.base_url}/api/finance/withdrawals",
                json={"shop_id": shop_id, "currency": "USD"},
                headers=owner.headers,
            ),
        )
        lane.server = await start(lane, *urls)
        began = time.monotonic()

        async def finished() -> bool:
            async with db.session() as session:
                found = (
                    await session.exec(select(Payout).where(col(Payout.shop_id) == shop_id))
                ).all()
            return len(found) == 1 and found[0].status != PayoutStatus.PENDING

        await until(finished, f"{lane.point}: the payout finished", FINAL_WITHIN_S)
        lane.waits.append(time.monotonic() - began)
        again = await client.post(
            f"{lane.server.base_url}/api/finance/withdrawals",
            json={"shop_id": shop_id, "currency": "USD"},
            headers=owner.headers,
        )
        assert again.status_code == 409, (lane.point, again.text)
        assert again.json()["error"]["code"] in ("payout_limit", "nothing_to_withdraw")
    return shop_id


async def check_payouts(lane: Lane, redis: Redis, db: Database, shop_ids: list[int]) -> None:
    async with db.session() as session:
        payouts = (
            await session.exec(select(Payout).where(col(Payout.shop_id).in_(shop_ids)))
        ).all()
        conn = await session.connection()
        rows = await conn.execute(
            core_select(
                col(LedgerEntry.shop_id), col(LedgerEntry.account), func.sum(LedgerEntry.amount)
            )
            .where(col(LedgerEntry.shop_id).in_(shop_ids))
            .group_by(col(LedgerEntry.shop_id), col(LedgerEntry.account))
        )
        balance = {(shop, account): int(total) for shop, account, total in rows.all()}
    assert len(payouts) == REPS, (lane.point, payouts)
    assert all(p.status == PayoutStatus.PAID for p in payouts), (lane.point, payouts)
    provider = SandboxProvider(redis, Keyspace(lane.prefix).sandbox)
    paid = {p.key: p for p in await provider.payouts()}
    for payout in payouts:
        assert paid[payout.key].amount == payout.amount, (lane.point, payout)
        # Credits are negative: the shop's money left available for paid out, all of it.
        assert balance.get((payout.shop_id, Account.AVAILABLE.value), 0) == 0, lane.point
        assert balance[(payout.shop_id, Account.PAID_OUT.value)] == -payout.amount, lane.point
        # ...and the provider's payout was recorded once.
        assert balance[(payout.shop_id, Account.PAYOUTS.value)] == payout.amount, lane.point
    assert len([p for p in paid.values() if p.key in {p.key for p in payouts}]) == REPS


async def check_balanced(db: Database, shop_ids: list[int], point: str) -> None:
    async with db.session() as session:
        conn = await session.connection()
        unbalanced = (
            await conn.execute(
                core_select(col(LedgerEntry.txn))
                .where(col(LedgerEntry.shop_id).in_(shop_ids))
                .group_by(col(LedgerEntry.txn), col(LedgerEntry.currency))
                .having(func.sum(col(LedgerEntry.amount)) != 0)
            )
        ).all()
    assert unbalanced == [], (point, unbalanced)


# -- the test ---------------------------------------------------------------------------------


@pytest.mark.timeout(120 + REPS * 30)
async def test_every_money_crash_point_ends_in_one_refund_or_one_payout(
    redis_url: str,
    database_url: str,
    redis: Redis,
    db: Database,
    seller: SellerAccount,
    tmp_path: Path,
) -> None:
    urls = (redis_url, database_url)
    lanes: list[tuple[Lane, HoldStore]] = []
    for n, point in enumerate(MONEY_POINTS):
        prefix = f"{PREFIX}m{n}"
        trigger = tmp_path / f"crash-{n}"
        lane = Lane(point, prefix, trigger, tmp_path / f"server-{n}.log", money_env(point, prefix))
        store = HoldStore(redis, Keyspace(prefix))
        await store.install()
        lanes.append((lane, store))
    done: dict[str, list[int]] = {lane.point: [] for lane, _ in lanes}
    deals: dict[str, int] = {}

    async def run(lane: Lane, store: HoldStore) -> None:
        lane.server = await start(lane, *urls)
        if not lane.point.startswith("payout."):
            deals[lane.point] = await creator_sale(lane, db, seller)
        while lane.crashes < REPS:
            if lane.point.startswith("payout."):
                done[lane.point].append(await payout_repetition(lane, db, store, urls))
                continue
            repetition = (
                refund_repetition if lane.point.startswith("refund.") else delivery_repetition
            )
            done[lane.point].append(await repetition(lane, seller, db, deals[lane.point], urls))

    try:
        async with asyncio.TaskGroup() as group:  # a failing lane stops the others
            for lane, store in lanes:
                group.create_task(run(lane, store))
        for lane, _ in lanes:
            if lane.point.startswith("payout."):
                await check_payouts(lane, redis, db, done[lane.point])
                await check_balanced(db, done[lane.point], lane.point)
                continue
            if lane.point.startswith("refund."):
                await check_refunds(lane, redis, db, deals[lane.point], done[lane.point])
            else:
                await check_deliveries(lane, db, done[lane.point])
            await check_balanced(db, [seller.shop.id or 0], lane.point)
            print(
                f"{lane.point}: {lane.crashes} crashes, finished after "
                f"{min(lane.waits):.2f}-{max(lane.waits):.2f} s"
            )
    finally:
        for lane, _ in lanes:
            if lane.server is not None:
                await asyncio.to_thread(forked.stop, lane.server.process)
