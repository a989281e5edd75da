"""Disputes (decision 0027; docs/money.md, "Disputes"), end to end against real Redis (Valkey) and
real SQL: the sandbox's dispute card and controls; a dispute that opens takes the money back,
refuses refunds, holds settlement and withdrawals; won, the money comes back; lost, the shop
bears it with its fee given back; events in any order, repeated, raced or arriving before their
order; the ledger audit passes after each step. Then the ledger's recipes, and migration 0008.

Most tests keep their books in a database and keyspace of their own (the audit reads the whole
ledger, and ``platform:chargebacks`` is one balance for everybody's disputes); one runs on the
shared ``stores`` (PostgreSQL in CI) and looks only at what concerns its own orders.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from redis.asyncio import Redis
from sqlalchemy import delete, func, update
from sqlalchemy import select as core_select
from sqlmodel import col, select

from catalog import affiliates, service
from catalog.affiliates import PlanProduct
from catalog.models import AffiliateDeal, Deal, Sku
from checkout import disputes, ledger, ledger_store, order_store
from checkout.audit import NOTICES, LedgerAudit, audit_ledger
from checkout.error_codes import CheckoutErrorCode
from checkout.holds import HoldStore, ReserveRequest
from checkout.keys import Keyspace
from checkout.ledger import Account
from checkout.models import Dispute, LedgerEntry, MoneyCursor, Order, PaymentEvent
from checkout.orders import OrderStatus
from checkout.payments import (
    DISPUTE_CARD,
    DisputeStatus,
    ProviderDispute,
    ProviderEvent,
    RefundStatus,
    SandboxProvider,
)
from checkout.payouts import Payouts
from checkout.refunds import RefundAsk, Refunds, refund_key
from checkout.settlement import settle_due
from checkout.webhooks import (
    ORDER_WAIT_MS,
    EventOutcome,
    apply_event,
    cursor_name,
    pull_events,
)
from kernel.clock import now_ms
from kernel.db import Database
from kernel.errors import DomainError
from tests.conftest import PREFIX, SellerAccount
from tests.helpers import CrashAt, Crashed
from tests.stores import Stores, drain
from tests.test_payouts import DAY_MS, delivered, set_payout_method, shop_balances
from web.migrate import alembic_config, upgrade

CARD = "4242424242424242"
TOTAL, FEE = 5000, 250  # two units of make_live_deal's 2500, at the default 5 %
storage = pytest.mark.storage


# -- books of the test's own ------------------------------------------------------------------


@pytest.fixture
async def own(tmp_path: Path, redis: Redis) -> AsyncIterator[Stores]:
    """``stores`` on a database and a keyspace (hence a sandbox provider) of the test's own."""
    url = f"sqlite:///{tmp_path / 'disputes.db'}"
    await asyncio.to_thread(upgrade, url)  # alembic runs an event loop of its own
    db = Database(url)
    keys = Keyspace(f"{PREFIX}d{secrets.token_hex(3)}")
    holds = HoldStore(redis, keys)
    await holds.install()
    async with db.session() as session:
        me, shop, token = await service.create_seller(session, "Disputed", "d@example.com")
    yield Stores(db, holds, keys, redis, SellerAccount(me, shop, token))
    await db.close()


def provider_of(stores: Stores) -> SandboxProvider:
    return SandboxProvider(stores.redis, stores.keys.sandbox)


def refunds_of(stores: Stores, point: str = "") -> Refunds:
    return Refunds(stores.db, stores.holds, provider_of(stores), stores.keys.prefix, CrashAt(point))


def payouts_of(stores: Stores) -> Payouts:
    return Payouts(stores.db, provider_of(stores), stores.keys.prefix)


async def sell(stores: Stores, deal: Deal, card: str = CARD, qty: int = 2) -> str:
    """One buyer reserves ``qty`` units, is charged by the sandbox and the hold is sold; the
    pipeline has not written the order yet. The hold's id."""
    buyer = secrets.token_hex(6)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(buyer, qty))
    terms = await stores.holds.begin_payment(hold.id, buyer, "a1")
    charge = await provider_of(stores).charge(
        key=f"{hold.id}:k", amount=terms.amount, currency="USD", card=card
    )
    await stores.holds.commit(hold.id, buyer, charge.id, "a1")
    return hold.id


async def orders(stores: Stores, n: int, card: str = CARD) -> list[Order]:
    """``n`` orders of two units each (5000, fee 250), written by the pipeline."""
    deal = await stores.live_deal(quantity=2 * n)
    holds = [await sell(stores, deal, card) for _ in range(n)]
    await drain(stores.pipeline())
    async with stores.db.session() as session:
        found = await session.exec(select(Order).where(col(Order.hold_id).in_(holds)))
        by_hold = {o.hold_id: o for o in found.all()}
    return [by_hold[h] for h in holds]


async def order_of(stores: Stores, order: Order) -> Order:
    async with stores.db.session() as session:
        found = await session.get(Order, order.id)
        assert found is not None
        return found


async def dispute_of(stores: Stores, order: Order) -> Dispute:
    async with stores.db.session() as session:
        [found] = await disputes.of_order(await session.connection(), order.id or 0)
    return found


async def open_at_provider(stores: Stores, order: Order) -> ProviderDispute:
    opened = await provider_of(stores).open_dispute(order.payment_ref)
    assert opened is not None
    return opened


async def pull(stores: Stores) -> int:
    return await pull_events(stores.db, refunds_of(stores), provider_of(stores))


async def txns_of(stores: Stores, order: Order, prefix: str = "dispute:") -> dict[str, int]:
    """The order's transactions named ``prefix…``, with their line counts."""
    async with stores.db.session() as session:
        rows = await (await session.connection()).execute(
            core_select(col(LedgerEntry.txn), func.count())
            .where(
                col(LedgerEntry.reference) == f"order:{order.id}",
                col(LedgerEntry.txn).like(prefix + "%"),
            )
            .group_by(col(LedgerEntry.txn))
        )
        return {txn: int(n) for txn, n in rows.all()}


async def lines_of(stores: Stores, txn: str) -> list[tuple[str, int]]:
    async with stores.db.session() as session:
        rows = await (await session.connection()).execute(
            core_select(col(LedgerEntry.account), col(LedgerEntry.amount))
            .where(col(LedgerEntry.txn) == txn)
            .order_by(col(LedgerEntry.line))
        )
        return [(account, int(amount)) for account, amount in rows.all()]


async def platform(stores: Stores, account: Account) -> int:
    """The sum of ``account`` over the whole (own) ledger."""
    async with stores.db.session() as session:
        found = await (await session.connection()).execute(
            core_select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
                col(LedgerEntry.account) == account.value
            )
        )
        return int(found.scalar_one())


def failures(found: LedgerAudit) -> dict[str, list[dict[str, Any]]]:
    return {
        f.name: getattr(found, f.name)
        for f in fields(found)
        if f.name not in NOTICES and isinstance(getattr(found, f.name), list)
        if getattr(found, f.name)
    }


async def assert_books(stores: Stores) -> LedgerAudit:
    found = await audit_ledger(stores.db, provider_of(stores), stores.keys.prefix)
    assert found.ok, failures(found)
    return found


async def refusal(stores: Stores, order: Order, amount: int | None = 1000) -> str:
    ask = RefundAsk(key=refund_key(order.id or 0, secrets.token_hex(4)), actor="s", amount=amount)
    with pytest.raises(DomainError) as refused:
        await refunds_of(stores).refund(order.id or 0, ask)
    return refused.value.code


async def settled(stores: Stores, order: Order) -> bool:
    return (await order_of(stores, order)).settled_ms is not None


# -- the sandbox ----------------------------------------------------------------------------------


@pytest.fixture
def sandbox(redis: Redis, private_keys: Keyspace) -> SandboxProvider:
    """A sandbox of the test's own: its objects and events are only this test's."""
    return SandboxProvider(redis, Keyspace(f"{private_keys.prefix}-{secrets.token_hex(4)}").sandbox)


def new_key() -> str:
    return "k-" + secrets.token_hex(4)


async def refused_by(sandbox: SandboxProvider, charge_id: str, amount: int) -> DomainError:
    with pytest.raises(DomainError) as refused:
        await sandbox.refund(key=new_key(), charge_id=charge_id, amount=amount, reason="r")
    return refused.value


@storage
async def test_the_dispute_card_is_approved_then_disputed_at_once(sandbox: SandboxProvider) -> None:
    charge = await sandbox.charge(key="k1", amount=1000, currency="USD", card=DISPUTE_CARD)
    [dispute] = await sandbox.disputes()
    assert (charge.status, charge.dispute, charge.version) == ("approved", dispute.id, 2)
    assert dispute.id.startswith("dp_")
    assert (dispute.charge, dispute.amount, dispute.currency) == (charge.id, 1000, "USD")
    assert (dispute.status, dispute.version) == (DisputeStatus.NEEDS_RESPONSE, 1)
    events = await sandbox.events("")
    assert [e.type for e in events] == ["charge.succeeded", "charge.dispute.created"]
    assert events[1].object["id"] == dispute.id
    # The same key is the same charge, disputed once.
    again = await sandbox.charge(key="k1", amount=1000, currency="USD", card=DISPUTE_CARD)
    assert again == charge and len(await sandbox.disputes()) == 1
    # While the bank holds the money, the provider refunds nothing.
    refused = await refused_by(sandbox, charge.id, 100)
    assert refused.code == CheckoutErrorCode.ORDER_DISPUTED
    assert (await sandbox.find("k1")) == charge and await sandbox.refunds() == []
    won = await sandbox.close_dispute(dispute.id, won=True)
    assert won is not None and (won.status, won.version) == (DisputeStatus.WON, 2)
    assert (await sandbox.events(events[-1].id))[0].type == "charge.dispute.closed"
    assert await sandbox.close_dispute(dispute.id, won=False) is None  # closed for good
    given = await sandbox.refund(key="r", charge_id=charge.id, amount=1000, reason="")
    assert given.status == RefundStatus.SUCCEEDED


@storage
async def test_a_dispute_takes_what_is_not_refunded_and_a_lost_one_takes_it_for_good(
    sandbox: SandboxProvider,
) -> None:
    charge = await sandbox.charge(key="k", amount=1000, currency="USD", card=CARD)
    assert charge.dispute is None
    await sandbox.refund(key="r1", charge_id=charge.id, amount=300, reason="")
    opened = await sandbox.open_dispute(charge.id)
    assert opened is not None and opened.amount == 700
    assert await sandbox.open_dispute(charge.id) == opened  # one dispute per charge
    lost = await sandbox.close_dispute(opened.id, won=False)
    assert lost is not None and lost.status == DisputeStatus.LOST
    refused = await refused_by(sandbox, charge.id, 1)
    assert refused.code == CheckoutErrorCode.REFUND_EXCEEDS_PAID
    assert refused.details["refundable"] == 0
    # Nothing to dispute, no such charge, no such dispute, not a dispute.
    whole = await sandbox.charge(key="w", amount=500, currency="USD", card=CARD)
    await sandbox.refund(key="r2", charge_id=whole.id, amount=500, reason="")
    assert await sandbox.open_dispute(whole.id) is None
    assert await sandbox.open_dispute("ch_nothing") is None
    assert await sandbox.close_dispute("dp_nothing", won=True) is None
    assert await sandbox.close_dispute(charge.id, won=True) is None
    assert len(await sandbox.disputes()) == 1


# -- open, won, lost ------------------------------------------------------------------------------


@dataclass
class Disputed:
    """Order a settled, then disputed; order b delivered long ago but unsettled, disputed; order
    c settled, undisputed."""

    a: Order
    b: Order
    c: Order
    now: int


async def disputed_books(stores: Stores, refund_a: int = 0) -> Disputed:
    a, b, c = await orders(stores, 3)
    if refund_a:
        ask = RefundAsk(key=refund_key(a.id or 0, "before"), actor="s", amount=refund_a)
        await refunds_of(stores).refund(a.id or 0, ask)
    now = now_ms()
    for order in (a, b, c):
        await delivered(stores, order, now - 8 * DAY_MS)
    # b is disputed before settlement can reach it; a and c settle.
    await open_at_provider(stores, b)
    assert await pull(stores) > 0
    assert await settle_due(stores.db, now, 7 * DAY_MS) == 2
    await open_at_provider(stores, a)
    await pull(stores)
    return Disputed(a, b, c, now)


@storage
async def test_an_open_dispute_takes_the_money_back_and_holds_refunds_settlement_and_payouts(
    own: Stores,
) -> None:
    books = await disputed_books(own, refund_a=1000)
    a, b = await dispute_of(own, books.a), await dispute_of(own, books.b)
    assert (a.amount, b.amount) == (4000, 5000)
    assert a.status == b.status == DisputeStatus.NEEDS_RESPONSE
    refunded = [(await order_of(own, o)).refunded for o in (books.a, books.b, books.c)]
    assert refunded == [5000, 5000, 0]
    assert await txns_of(own, books.a) == {f"dispute:{a.id}:opened": 2}
    assert await lines_of(own, f"dispute:{a.id}:opened") == [
        (Account.CHARGEBACKS, 4000),
        (Account.PROVIDER, -4000),
    ]
    assert await platform(own, Account.CHARGEBACKS) == 9000
    # The order shows it.
    async with own.db.session() as session:
        notes = [e.note for e in await order_store.events_of(session, books.a.id or 0)]
    assert any(a.provider_id in note and "opened" in note for note in notes)
    # No refund, no cancel, not even of what the bank did not take: nothing is written.
    assert await refusal(own, books.a) == CheckoutErrorCode.ORDER_DISPUTED
    assert await refusal(own, books.b, amount=None) == CheckoutErrorCode.ORDER_DISPUTED
    assert len(await refunds_of(own).of_order(books.b.id or 0)) == 0
    # b does not settle while its dispute is open.
    assert await settle_due(own.db, books.now + DAY_MS, 7 * DAY_MS) == 0
    assert not await settled(own, books.b)
    # A withdrawal leaves a's disputed amount (a settled) with the platform; b's is pending.
    available = (await shop_balances(own, own.seller.shop.id or 0))[Account.AVAILABLE]
    assert available == (TOTAL - FEE - 1000 + 50) + (TOTAL - FEE)
    await set_payout_method(own, own.seller.shop.id or 0, "acct_test")
    payout = await payouts_of(own).withdraw(own.seller.shop.id or 0, "USD", "seller")
    assert payout.amount == available - 4000
    await assert_books(own)


@storage
async def test_a_won_dispute_gives_the_money_back_and_the_order_its_refunds(own: Stores) -> None:
    books = await disputed_books(own)
    for order in (books.a, books.b):
        found = await dispute_of(own, order)
        assert await provider_of(own).close_dispute(found.provider_id, won=True)
    assert await pull(own) == 2
    for order in (books.a, books.b):
        found = await dispute_of(own, order)
        assert (found.status, found.version) == ("won", 2)
        assert await txns_of(own, order) == {
            f"dispute:{found.id}:opened": 2,
            f"dispute:{found.id}:won": 2,
        }
        assert (await order_of(own, order)).refunded == 0
    assert await platform(own, Account.CHARGEBACKS) == 0
    await assert_books(own)
    # Refunds again, and b settles.
    ask = RefundAsk(key=refund_key(books.a.id or 0, "after"), actor="s", amount=1000)
    refund = await refunds_of(own).refund(books.a.id or 0, ask)
    assert refund.status == RefundStatus.SUCCEEDED
    assert await settle_due(own.db, books.now, 7 * DAY_MS) == 1 and await settled(own, books.b)
    await set_payout_method(own, own.seller.shop.id or 0, "acct_test")
    payout = await payouts_of(own).withdraw(own.seller.shop.id or 0, "USD", "seller")
    assert payout.amount == 3 * (TOTAL - FEE) - 1000 + 50
    await assert_books(own)


@storage
async def test_a_lost_dispute_is_borne_by_the_shop_with_its_fee_given_back(own: Stores) -> None:
    books = await disputed_books(own, refund_a=1000)
    for order in (books.a, books.b):
        found = await dispute_of(own, order)
        assert await provider_of(own).close_dispute(found.provider_id, won=False)
    assert await pull(own) == 2
    a, b = await dispute_of(own, books.a), await dispute_of(own, books.b)
    # a had settled: the shop's available balance bears it; the fee left on a (fee(4000) =
    # 200) goes back, as the buyer kept nothing.
    assert await lines_of(own, f"dispute:{a.id}:lost") == [
        (Account.AVAILABLE, 4000),
        (Account.AVAILABLE, -200),
        (Account.FEES, 200),
        (Account.CHARGEBACKS, -4000),
    ]
    # b had not: its pending share bears it.
    assert await lines_of(own, f"dispute:{b.id}:lost") == [
        (Account.PENDING, 5000),
        (Account.PENDING, -250),
        (Account.FEES, 250),
        (Account.CHARGEBACKS, -5000),
    ]
    for order in (books.a, books.b):
        after = await order_of(own, order)
        assert (after.status, after.refunded) == (OrderStatus.REFUNDED, TOTAL)
    # What is left: c's net, available; nothing pending, no fee but c's, nothing in flight.
    balances = await shop_balances(own, own.seller.shop.id or 0)
    assert balances[Account.AVAILABLE] == TOTAL - FEE
    assert balances[Account.PENDING] == 0
    assert await platform(own, Account.FEES) == -FEE
    assert await platform(own, Account.CHARGEBACKS) == 0
    assert await platform(own, Account.PROVIDER) == TOTAL  # c's sale: all the provider holds
    assert await refusal(own, books.a) == CheckoutErrorCode.ORDER_NOT_REFUNDABLE
    await assert_books(own)


@storage
async def test_the_audit_finds_a_dispute_whose_books_do_not_match(own: Stores) -> None:
    [order] = await orders(own, 1)
    await open_at_provider(own, order)
    await pull(own)
    found = await dispute_of(own, order)
    await assert_books(own)
    # Marked won in SQL behind the ledger's back: the won transaction is missing, the order
    # still counts the amount as taken back, and platform:chargebacks holds a closed dispute.
    async with own.db.session() as session:
        await session.exec(
            update(Dispute).where(col(Dispute.id) == found.id).values(status=DisputeStatus.WON)
        )
        await session.commit()
    audit = await audit_ledger(own.db, provider_of(own), own.keys.prefix)
    assert audit.missing_dispute_txns == [{"dispute": found.id, "txn": f"dispute:{found.id}:won"}]
    assert audit.refunded_mismatches == [
        {"order": order.id, "total": TOTAL, "refunded": TOTAL, "refunds": 0, "disputes": 0}
    ]
    assert audit.chargebacks_in_flight == [{"currency": "USD", "ledger": TOTAL, "expected": 0}]
    assert set(failures(audit)) == {
        "missing_dispute_txns",
        "refunded_mismatches",
        "chargebacks_in_flight",
    }
    # A stray dispute transaction is found too.
    async with own.db.session() as session:
        await ledger_store.post(
            await session.connection(), ledger.dispute_won(999, order.id or 0, 1, "USD", 5)
        )
        await session.commit()
    audit = await audit_ledger(own.db, provider_of(own), own.keys.prefix)
    assert audit.unexpected_dispute_txns == [{"dispute": 999, "txn": "dispute:999:won"}]


# -- events in any order --------------------------------------------------------------------------


async def events_of(stores: Stores, dispute_id: str) -> list[ProviderEvent]:
    return [e for e in await provider_of(stores).events("") if e.object.get("id") == dispute_id]


@storage
async def test_dispute_events_in_any_order_repeated_or_raced_end_the_same(own: Stores) -> None:
    lost, won, raced = await orders(own, 3)
    refunds = refunds_of(own)
    decided = {}
    for order, verdict in ((lost, False), (won, True), (raced, False)):
        opened = await open_at_provider(own, order)
        assert await provider_of(own).close_dispute(opened.id, won=verdict)
        decided[order.id] = await events_of(own, opened.id)
    for order in (lost, won):
        created, closed = decided[order.id]
        # The close comes first: both transactions are posted.
        assert await apply_event(own.db, refunds, closed) == EventOutcome.APPLIED
        found = await dispute_of(own, order)
        opened_txn = f"dispute:{found.id}:opened"
        assert set(await txns_of(own, order)) == {opened_txn, f"dispute:{found.id}:{found.status}"}
        # The late create is recorded and changes nothing; repeats are replays.
        assert await apply_event(own.db, refunds, created) == EventOutcome.RECORDED
        for event in (created, closed):
            assert await apply_event(own.db, refunds, event) == EventOutcome.REPLAYED
        assert (await dispute_of(own, order)).version == 2
        await assert_books(own)
    assert (await dispute_of(own, lost)).status == DisputeStatus.LOST
    assert (await dispute_of(own, won)).status == DisputeStatus.WON
    assert [(await order_of(own, o)).refunded for o in (lost, won)] == [TOTAL, 0]
    # Both events of a dispute at once, each delivered twice: one row, each move posted once.
    created, closed = decided[raced.id]
    answers = await asyncio.gather(
        *(apply_event(own.db, refunds, e) for e in (created, closed, closed, created))
    )
    assert answers.count(EventOutcome.REPLAYED) == 2
    found = await dispute_of(own, raced)
    assert (found.status, found.version) == (DisputeStatus.LOST, 2)
    assert await txns_of(own, raced) == {
        f"dispute:{found.id}:opened": 2,
        f"dispute:{found.id}:lost": 4,
    }
    # The reconciler's pull finds nothing more to do.
    await pull(own)
    assert (await order_of(own, raced)).refunded == TOTAL
    await assert_books(own)


@storage
async def test_a_dispute_that_comes_before_its_order_waits_for_it(own: Stores) -> None:
    deal = await own.live_deal(quantity=2)
    hold = await sell(own, deal, DISPUTE_CARD)  # disputed at once; the order not written yet
    charged, dispute_event = await provider_of(own).events("")
    assert dispute_event.type == "charge.dispute.created"
    refunds = refunds_of(own)
    assert await apply_event(own.db, refunds, dispute_event) == EventOutcome.DEFERRED
    async with own.db.session() as session:
        assert await session.get(PaymentEvent, dispute_event.id) is None  # sent again later
    assert await pull(own) == 0  # the charge's event, skipped: nothing to act on
    async with own.db.session() as session:
        cursor = await session.get(MoneyCursor, cursor_name(own.keys.prefix))
        assert cursor is not None and cursor.value == charged.id  # held before the dispute
        assert (await session.exec(select(Dispute))).all() == []
    await drain(own.pipeline())
    assert await pull(own) == 1
    async with own.db.session() as session:
        order = (await session.exec(select(Order).where(Order.hold_id == hold))).one()
        cursor = await session.get(MoneyCursor, cursor_name(own.keys.prefix))
        assert cursor is not None and cursor.value == dispute_event.id
    assert (await dispute_of(own, order)).amount == TOTAL
    assert (await order_of(own, order)).refunded == TOTAL
    await assert_books(own)
    # Past the wait, a dispute of a charge no order has is recorded and otherwise ignored.
    stray = ProviderEvent(
        id="evt_stray",
        type="charge.dispute.created",
        object={**dispute_event.object, "id": "dp_stray", "charge": "ch_no_order"},
        created_ms=now_ms() - ORDER_WAIT_MS - 1,
    )
    assert await apply_event(own.db, refunds, stray) == EventOutcome.RECORDED
    async with own.db.session() as session:
        assert len((await session.exec(select(Dispute))).all()) == 1


@storage
async def test_a_refund_granted_before_the_dispute_is_refused_by_the_provider(own: Stores) -> None:
    [order] = await orders(own, 1)
    ask = RefundAsk(key=refund_key(order.id or 0, "early"), actor="s", amount=1000)
    with pytest.raises(Crashed):  # granted in SQL; the provider not asked yet
        await refunds_of(own, "refund.after_grant").refund(order.id or 0, ask)
    opened = await open_at_provider(own, order)
    assert opened.amount == TOTAL  # the provider had given nothing back
    await pull(own)
    assert (await order_of(own, order)).refunded == TOTAL + 1000  # until the provider refuses
    assert await refunds_of(own).finish_pending(lease_ms=0, now=now_ms()) == 1
    [refund] = await refunds_of(own).of_order(order.id or 0)
    assert refund.status == RefundStatus.FAILED
    assert (await order_of(own, order)).refunded == TOTAL
    found = await assert_books(own)
    assert [f["refund"] for f in found.failed_refunds] == [refund.id]
    # Lost: the shop bears the whole charge, the whole fee goes back.
    assert await provider_of(own).close_dispute(opened.id, won=False)
    await pull(own)
    assert await platform(own, Account.FEES) == 0
    assert (await shop_balances(own, own.seller.shop.id or 0)).get(Account.PENDING, 0) == 0
    await assert_books(own)


@storage
async def test_disputes_on_the_shared_database(stores: Stores, private_keys: Keyspace) -> None:
    """The same moves among every other test's books: the queries on the CI's PostgreSQL too.
    Only findings about these orders and disputes count."""
    # The shared stores' holds and pipeline (the private keyspace); a sandbox of the test's own.
    sandbox = Keyspace(f"{private_keys.prefix}-{secrets.token_hex(4)}")
    mine = Stores(stores.db, stores.holds, sandbox, stores.redis, stores.seller)
    deal = await stores.live_deal(quantity=4)
    holds = [await sell(mine, deal) for _ in range(2)]
    await drain(stores.pipeline())
    async with stores.db.session() as session:
        found = await session.exec(select(Order).where(col(Order.hold_id).in_(holds)))
        first, second = sorted(found.all(), key=lambda o: o.id or 0)
    refunds = refunds_of(mine)
    for order, verdict in ((first, False), (second, True)):
        opened = await open_at_provider(mine, order)
        assert await provider_of(mine).close_dispute(opened.id, won=verdict)
        created, closed = await events_of(mine, opened.id)
        await asyncio.gather(*(apply_event(stores.db, refunds, e) for e in (closed, created)))
    ask = RefundAsk(key=refund_key(second.id or 0, "won"), actor="s", amount=1000)
    assert (await refunds.refund(second.id or 0, ask)).status == RefundStatus.SUCCEEDED
    one, two = await dispute_of(mine, first), await dispute_of(mine, second)
    assert (one.status, two.status) == (DisputeStatus.LOST, DisputeStatus.WON)
    assert (await order_of(mine, first)).status == OrderStatus.REFUNDED
    found_audit = await audit_ledger(stores.db, provider_of(mine), mine.keys.prefix)
    orders_ = {first.id, second.id}
    ids = {one.id, two.id}

    def about_mine(finding: dict[str, Any]) -> bool:
        txn = str(finding.get("txn", ""))
        return (
            finding.get("order") in orders_
            or finding.get("dispute") in ids
            or finding.get("charge") in {first.payment_ref, second.payment_ref}
            or any(txn.startswith(f"dispute:{i}:") for i in ids)
            or txn in {f"sale:{first.id}", f"sale:{second.id}"}
        )

    mine_only = {k: [f for f in v if about_mine(f)] for k, v in failures(found_audit).items()}
    assert {k: v for k, v in mine_only.items() if v} == {}


# -- the ledger's recipes (pure) ------------------------------------------------------------------


def sums(*txns: ledger.Transaction) -> dict[Account, int]:
    totals: dict[Account, int] = {}
    for txn in txns:
        for line in txn.lines:
            totals[line.account] = totals.get(line.account, 0) + line.amount
    return {account: amount for account, amount in totals.items() if amount}


def test_a_won_dispute_reverses_its_opening() -> None:
    opened = ledger.dispute_opened(3, 41, 7, "USD", 10_000)
    assert (opened.txn, opened.reference) == ("dispute:3:opened", "order:41")
    assert sums(opened) == {Account.CHARGEBACKS: 10_000, Account.PROVIDER: -10_000}
    won = ledger.dispute_won(3, 41, 7, "USD", 10_000)
    assert won.txn == "dispute:3:won" and sums(opened, won) == {}


def test_a_lost_dispute_of_a_whole_order_leaves_nothing_with_anyone() -> None:
    """The worked example's order 41 (10000, fee 500), disputed whole and lost."""
    sale = ledger.sale(41, 7, "USD", 10_000, 500)
    opened = ledger.dispute_opened(3, 41, 7, "USD", 10_000)
    fee_back = ledger.fee_returned(500, 10_000, 500, 10_000)
    assert fee_back == 500
    lost = ledger.dispute_lost(3, 41, 7, "USD", 10_000, fee_back, Account.PENDING)
    assert lost.txn == "dispute:3:lost" and len(lost.lines) == 4
    assert sums(sale, opened, lost) == {}


def test_a_lost_dispute_after_a_partial_refund_and_settlement() -> None:
    """30.00 refunded, settled, then the remaining 70.00 disputed and lost: the shop's available
    balance bears it, less the 350 fee kept on it, and ends where a full refund would."""
    sale = ledger.sale(41, 7, "USD", 10_000, 500)
    refund = ledger.refund_granted(12, 41, 7, "USD", 3000, 150, Account.PENDING)
    done = ledger.refund_succeeded(12, 41, 7, "USD", 3000)
    settle = ledger.settlement(41, 7, "USD", 6650)
    opened = ledger.dispute_opened(3, 41, 7, "USD", 7000)
    fee_back = ledger.fee_returned(350, 10_000, 500, 10_000)
    lost = ledger.dispute_lost(3, 41, 7, "USD", 7000, fee_back, Account.AVAILABLE)
    assert fee_back == 350
    assert sums(sale, refund, done, settle, opened, lost) == {}
    # No fee to give back (a zero-fee order): the zero lines are left out.
    bare = ledger.dispute_lost(4, 42, 7, "USD", 2500, 0, Account.PENDING)
    assert [line.account for line in bare.lines] == [Account.PENDING, Account.CHARGEBACKS]


# -- migration 0008 -------------------------------------------------------------------------------


def test_migration_0008_adds_disputes_and_goes_down_and_up_keeping_orders(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0007")
    with sqlite3.connect(path) as db:  # no foreign keys enforced here: an order on its own
        db.execute(
            "INSERT INTO orders (id, hold_id, deal_id, shop_id, sku_id, buyer_id, quantity,"
            " unit_price, total, currency, status, payment_ref, paid_ms, created_ms, updated_ms)"
            " VALUES (1, 'h1', 1, 1, 1, 'b', 1, 2500, 2500, 'USD', 'paid', 'ch_1', 0, 0, 0)"
        )
    command.upgrade(config, "0008")

    def indexes(db: sqlite3.Connection, table: str) -> set[str]:
        return {row[1] for row in db.execute(f"PRAGMA index_list({table})")}

    with sqlite3.connect(path) as db:
        assert "ix_orders_payment_ref" in indexes(db, "orders")
        assert {"ix_disputes_order_id", "ix_disputes_status"} <= indexes(db, "disputes")
        db.execute(
            "INSERT INTO disputes (provider_id, keyspace, order_id, shop_id, amount, currency,"
            " status, version, created_ms, updated_ms)"
            " VALUES ('dp_1', 'lc', 1, 1, 2500, 'USD', 'needs_response', 1, 0, 0)"
        )
        with pytest.raises(sqlite3.IntegrityError):  # one row per provider dispute
            db.execute(
                "INSERT INTO disputes (provider_id, keyspace, order_id, shop_id, amount,"
                " currency, status, version, created_ms, updated_ms)"
                " VALUES ('dp_1', 'lc', 1, 1, 1, 'USD', 'lost', 2, 0, 0)"
            )
    command.downgrade(config, "0007")
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "disputes" not in tables and "ix_orders_payment_ref" not in tables
        assert db.execute("SELECT id, payment_ref FROM orders").fetchall() == [(1, "ch_1")]
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM disputes").fetchone() == (0,)


# -- a creator's commission follows the dispute ------------------------------------------------

RATE_BP = 1500  # 15 % of an order's 5,000: 750


async def creator_orders(stores: Stores, n: int) -> list[Order]:
    """``n`` orders of a deal a creator runs under the shop's affiliate plan, attributed by the
    pipeline as it writes them (from the deal's ``affiliate_deals`` row), then delivered through
    ``order_store.transition``, which earns the commission."""
    deal = await stores.live_deal(quantity=2 * n)
    async with stores.db.session() as session:
        creator, creator_shop, _ = await service.create_seller(session, "Creator", "c@example.com")
        sku = await session.get(Sku, deal.sku_id)
        assert sku is not None and creator.id is not None
        plan = await affiliates.create_plan(
            session,
            stores.seller.seller,
            stores.seller.shop.id or 0,
            "Disputed plan",
            [PlanProduct(sku.product_id, RATE_BP)],
            open_to_all=True,
        )
        session.add(
            AffiliateDeal(
                deal_id=deal.id or 0,
                room_id=1,
                creator_id=creator.id,
                creator_shop_id=creator_shop.id or 0,
                plan_id=plan.id or 0,
                rate_bp=RATE_BP,
            )
        )
        await session.commit()
    holds = [await sell(stores, deal) for _ in range(n)]
    await drain(stores.pipeline())
    found: list[Order] = []
    for hold in holds:
        async with stores.db.session() as session:
            order = (await session.exec(select(Order).where(col(Order.hold_id) == hold))).one()
            order = await order_store.transition(
                session,
                order,
                "ship",
                "s",
                carrier="UPS",
                tracking_number="1Z9",
                confirm_first=True,
            )
            found.append(await order_store.transition(session, order, "deliver", "s"))
    return found


async def commission_of(stores: Stores, order: Order) -> int:
    async with stores.db.session() as session:
        conn = await session.connection()
        return -await ledger_store.order_sum(conn, order.id or 0, Account.COMMISSIONS)


async def test_a_disputed_order_gives_its_commission_back_until_the_dispute_is_won(
    own: Stores,
) -> None:
    won, lost = await creator_orders(own, 2)
    assert [await commission_of(own, o) for o in (won, lost)] == [750, 750]
    opened = [await open_at_provider(own, o) for o in (won, lost)]
    assert await pull(own) == 2
    # The bank took the whole charge back: nothing kept, nothing earned.
    assert [await commission_of(own, o) for o in (won, lost)] == [0, 0]
    await provider_of(own).close_dispute(opened[0].id, won=True)
    await provider_of(own).close_dispute(opened[1].id, won=False)
    assert await pull(own) == 2
    assert [await commission_of(own, o) for o in (won, lost)] == [750, 0]
    # Each move posted once, under the dispute's name; the events again post nothing.
    for order, steps in ((won, ["opened", "won"]), (lost, ["opened"])):
        names = await txns_of(own, order, f"commission:{order.id}:dispute:")
        assert sorted(n.rpartition(":")[2] for n in names) == steps, names
    async with own.db.session() as session:
        await session.exec(delete(MoneyCursor))  # every event is read again
        await session.commit()
    await pull(own)
    assert [await commission_of(own, o) for o in (won, lost)] == [750, 0]
    await assert_books(own)
