"""The ledger audit (decision 0027, section 5) against real Redis, a real database and the
sandbox provider: books made by real sales, refunds and a cancel pass; a changed amount, a
renumbered line, a deleted sale, a stray sale, a refund the provider never saw and a refund made
behind livecart's back are each found, naming what they concern. The deal audit counts units
refunds gave back to the deal. ``livecart audit`` exits 1 on a finding.

Most tests keep their books in a database and keyspace of their own: they corrupt them on
purpose, and the audit reads the whole ledger (the shared test database must stay clean for
whatever audits it). One runs on the shared ``stores`` (PostgreSQL in CI) and looks only at
what concerns its own orders.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, update
from sqlmodel import col, select

from catalog import service
from catalog.models import Deal
from checkout import ledger, ledger_store
from checkout.audit import NOTICES, LedgerAudit, audit_ledger
from checkout.holds import HoldStore, ReserveRequest
from checkout.keys import Keyspace
from checkout.ledger import Account
from checkout.models import LedgerEntry, Order, Refund
from checkout.payments import (
    PENDING_REFUNDS_CARD,
    RefundStatus,
    SandboxProvider,
    refund_whole,
)
from checkout.refunds import DealRestock, RefundAsk, Refunds, refund_key
from kernel.clock import now_ms
from kernel.db import Database
from tests.conftest import PREFIX, SellerAccount
from tests.stores import Stores, drain
from web.migrate import upgrade

pytestmark = pytest.mark.storage

CARD = "4242424242424242"


@pytest.fixture
def own_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'books.db'}"
    upgrade(url)  # synchronous: alembic runs its own event loop
    return url


@pytest.fixture
async def own(own_url: str, redis: Redis) -> AsyncIterator[Stores]:
    """``stores`` on a database and a keyspace (hence a sandbox provider) of the test's own."""
    db = Database(own_url)
    keys = Keyspace(f"{PREFIX}a{secrets.token_hex(3)}")
    holds = HoldStore(redis, keys)
    await holds.install()
    async with db.session() as session:
        me, shop, token = await service.create_seller(session, "Audited", "books@example.com")
    yield Stores(db, holds, keys, redis, SellerAccount(me, shop, token))
    await db.close()


def provider_of(stores: Stores) -> SandboxProvider:
    return SandboxProvider(stores.redis, stores.keys.sandbox)


def refunds_of(stores: Stores) -> Refunds:
    return Refunds(stores.db, stores.holds, provider_of(stores), stores.keys.prefix)


async def audit(stores: Stores) -> LedgerAudit:
    return await audit_ledger(stores.db, provider_of(stores), stores.keys.prefix)


def failures(found: LedgerAudit) -> dict[str, list[dict[str, Any]]]:
    """The non-empty lists that fail ``ok``."""
    return {
        f.name: getattr(found, f.name)
        for f in fields(found)
        if f.name not in NOTICES and isinstance(getattr(found, f.name), list)
        if getattr(found, f.name)
    }


async def buy(stores: Stores, deal: Deal, qty: int = 1, card: str = CARD) -> str:
    """One buyer reserves, is charged by the sandbox and the hold is sold: its id."""
    buyer = secrets.token_hex(6)
    hold = await stores.holds.reserve(deal.id or 0, ReserveRequest(buyer, qty))
    terms = await stores.holds.begin_payment(hold.id, buyer, "a1")
    charge = await provider_of(stores).charge(
        key=f"{hold.id}:k", amount=terms.amount, currency="USD", card=card
    )
    await stores.holds.commit(hold.id, buyer, charge.id, "a1")
    return hold.id


async def orders_of(stores: Stores, hold_ids: list[str]) -> list[Order]:
    """The holds' orders, once the pipeline has written them, in the holds' order."""
    await drain(stores.pipeline())
    async with stores.db.session() as session:
        found = await session.exec(select(Order).where(col(Order.hold_id).in_(hold_ids)))
        by_hold = {order.hold_id: order for order in found.all()}
    return [by_hold[hold_id] for hold_id in hold_ids]


async def sql(stores: Stores, statement: Any) -> None:
    async with stores.db.session() as session:
        await session.exec(statement)
        await session.commit()


async def entry_id(stores: Stores, txn: str, line: int) -> int:
    async with stores.db.session() as session:
        found = await session.exec(
            select(LedgerEntry.id).where(LedgerEntry.txn == txn, LedgerEntry.line == line)
        )
        return found.one() or 0


@dataclass
class Books:
    """Sales, refunds and a cancel, made the way the server makes them."""

    deal: Deal
    orders: list[Order]
    refunds: list[Refund]
    pending: Refund  # on the card whose refunds stay pending until the sandbox decides


async def make_books(stores: Stores) -> Books:
    deal = await stores.live_deal(quantity=5, stock=20)
    holds = [await buy(stores, deal, qty=2), await buy(stores, deal), await buy(stores, deal)]
    holds.append(await buy(stores, deal, card=PENDING_REFUNDS_CARD))  # sold out: 5 units
    a, b, c, d = orders_of_sale = await orders_of(stores, holds)
    refunds = refunds_of(stores)
    partial = await refunds.refund(
        a.id or 0, RefundAsk(key=refund_key(a.id or 0, "p"), actor="seller", amount=1000)
    )
    whole = await refunds.refund(
        b.id or 0, RefundAsk(key=refund_key(b.id or 0, "w"), actor="seller", units=1)
    )
    cancelled = await refunds.cancel(c.id or 0, "seller", "out of stock")
    pending = await refunds.refund(
        d.id or 0, RefundAsk(key=refund_key(d.id or 0, "d"), actor="seller", amount=700)
    )
    assert [r.status for r in (partial, whole, cancelled)] == [RefundStatus.SUCCEEDED] * 3
    assert pending.status == RefundStatus.PENDING and pending.provider_ref
    # b's unit and c's went back to the live deal, which sells them again.
    assert whole.deal_restock == cancelled.deal_restock == DealRestock.DEAL
    again = await orders_of(stores, [await buy(stores, deal), await buy(stores, deal)])
    # A lapsed hold's charge, given back whole under a void: key (decision 0017).
    lapsed = await provider_of(stores).charge(
        key=f"{deal.id}-999:k", amount=2500, currency="USD", card=CARD
    )
    await refund_whole(provider_of(stores), lapsed)
    return Books(deal, [*orders_of_sale, *again], [partial, whole, cancelled, pending], pending)


async def test_books_kept_by_sales_refunds_and_a_cancel_pass(own: Stores) -> None:
    books = await make_books(own)
    found = await audit(own)
    assert found.ok, failures(found)
    # 6 sales of 4 lines (5 % fee), 4 grants (the fee goes back with them) and 3 outcomes.
    assert found.transactions == 6 + 4 + 3
    assert found.failed_refunds == [] and found.moved_no_money == []
    assert json.loads(json.dumps(found.json()))["ok"] is True

    # The deal's books net of the two units refunds gave back: 7 units ordered from a deal of 5
    # is not oversold, since two of them were sold twice.
    deal = await own.audit(books.deal.id or 0)
    assert (deal.order_units, deal.restocked_units, deal.sold, deal.quantity) == (7, 2, 5, 5)
    assert deal.oversold == 0 and deal.sold_matches_holds and deal.ok, deal

    # The provider refuses the pending refund at last: listed for an operator, not wrong.
    pending = books.pending
    decided = await provider_of(own).finish_refund(pending.provider_ref, RefundStatus.FAILED)
    assert decided is not None
    await refunds_of(own).apply_outcome(
        pending.id or 0, RefundStatus.FAILED, decided.id, decided.version
    )
    after = await audit(own)
    assert after.ok, failures(after)
    assert after.failed_refunds == [
        {
            "refund": pending.id,
            "key": pending.key,
            "order": pending.order_id,
            "amount": 700,
            "currency": "USD",
        }
    ]


async def test_a_changed_amount_is_found_naming_its_transaction(own: Stores) -> None:
    books = await make_books(own)
    order = books.orders[0]
    txn = f"sale:{order.id}"
    changed = await entry_id(own, txn, 0)
    await sql(
        own,
        update(LedgerEntry)
        .where(col(LedgerEntry.id) == changed)
        .values(amount=col(LedgerEntry.amount) + 1),
    )
    found = await audit(own)
    assert not found.ok
    assert found.unbalanced == [{"txn": txn, "currency": "USD", "sum": 1}]
    assert [(w["order"], w["txn"]) for w in found.wrong_sales] == [(order.id, txn)]
    assert found.wrong_sales[0]["found"]["provider"] == order.total + 1
    assert set(failures(found)) == {"unbalanced", "wrong_sales"}


async def test_a_renumbered_line_is_found(own: Stores) -> None:
    books = await make_books(own)
    grant = f"refund:{books.refunds[0].id}"
    moved = await entry_id(own, grant, 3)
    await sql(own, update(LedgerEntry).where(col(LedgerEntry.id) == moved).values(line=7))
    found = await audit(own)
    assert found.misnumbered == [{"txn": grant, "lines": 4, "first": 0, "last": 7}]
    assert set(failures(found)) == {"misnumbered"}


async def test_a_deleted_sale_and_a_sale_without_an_order_are_found(own: Stores) -> None:
    books = await make_books(own)
    order = books.orders[-1]  # sold again after a refund; no refund of its own
    await sql(own, delete(LedgerEntry).where(col(LedgerEntry.txn) == f"sale:{order.id}"))
    found = await audit(own)
    assert found.missing_sales == [{"order": order.id, "txn": f"sale:{order.id}"}]
    assert set(failures(found)) == {"missing_sales"}

    stray = ledger.sale(999_999, books.deal.shop_id, "USD", 2500, 500)
    async with own.db.session() as session:
        await ledger_store.post(await session.connection(), stray)
        await session.commit()
    found = await audit(own)
    assert found.sales_without_order == [{"txn": "sale:999999"}]


async def test_a_refund_row_the_provider_never_saw_is_found(own: Stores) -> None:
    books = await make_books(own)
    order = books.orders[-1]
    now = now_ms()
    async with own.db.session() as session:
        row = Refund(
            key=refund_key(order.id or 0, "by-hand"),
            keyspace=own.keys.prefix,
            order_id=order.id or 0,
            shop_id=order.shop_id,
            amount=300,
            fee_returned=15,
            currency="USD",
            units=0,
            shop_account=Account.PENDING.value,
            actor="hand",
            status=RefundStatus.PENDING.value,
            created_ms=now,
            updated_ms=now,
        )
        session.add(row)
        await session.commit()
        await session.refresh(row)
    found = await audit(own)
    assert found.refunds_missing_at_provider == [
        {"refund": row.id, "key": row.key, "order": order.id, "amount": 300, "status": "pending"}
    ]
    # Nor was it granted: no grant transaction, the order's guard and platform:refunds short.
    assert found.missing_refund_txns == [{"refund": row.id, "txn": f"refund:{row.id}"}]
    assert [m["order"] for m in found.refunded_mismatches] == [order.id]
    assert found.refunds_in_flight == [{"currency": "USD", "ledger": -700, "expected": -1000}]
    assert not found.ok


async def test_a_refund_made_behind_livecarts_back_is_found(own: Stores) -> None:
    books = await make_books(own)
    order = books.orders[-1]
    external = await provider_of(own).refund(
        key="dashboard-1", charge_id=order.payment_ref, amount=100, reason="by hand"
    )
    found = await audit(own)
    assert found.unknown_provider_refunds == [
        {"refund": external.id, "key": "dashboard-1", "charge": order.payment_ref, "amount": 100}
    ]
    assert [
        (c["charge"], c["amount_refunded"], c["expected"]) for c in found.charge_mismatches
    ] == [(order.payment_ref, 100, 0)]
    assert set(failures(found)) == {"unknown_provider_refunds", "charge_mismatches"}


async def test_the_shared_database_has_no_finding_about_these_books(stores: Stores) -> None:
    """The same books among every other test's: the queries on the CI's PostgreSQL too. Only
    findings about these orders, refunds and charges count (others are other tests')."""
    books = await make_books(stores)
    orders = {o.id for o in books.orders}
    refunds = {r.id for r in books.refunds}
    charges = {o.payment_ref for o in books.orders}
    found = await audit(stores)

    def mine(finding: dict[str, Any]) -> bool:
        txn = str(finding.get("txn", ""))
        named = int(txn.split(":")[1]) if txn.count(":") and txn.split(":")[1].isdigit() else None
        return (
            finding.get("order") in orders
            or finding.get("refund") in refunds
            or finding.get("charge") in charges
            or (txn.startswith("sale:") and named in orders)
            or (txn.startswith("refund:") and named in refunds)
        )

    about_mine = {
        name: [f for f in found_list if mine(f)] for name, found_list in failures(found).items()
    }
    assert {name: f for name, f in about_mine.items() if f} == {}
    assert found.entries >= 6 * 4  # the six sales at least: the audit read them


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


async def test_livecart_audit_checks_the_ledger_and_fails_on_a_changed_amount(
    redis_url: str, own_url: str, own: Stores
) -> None:
    books = await make_books(own)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": own_url,
        "LIVECART_REDIS_PREFIX": own.keys.prefix,
    }
    ledger_only = [sys.executable, "-m", "web.cli", "audit", "--wait", "0"]
    with_deal = [*ledger_only, "--deal", str(books.deal.id)]
    fine = await asyncio.to_thread(run, ledger_only, env)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert json.loads(fine.stdout)["ledger"]["ok"] is True
    both = await asyncio.to_thread(run, with_deal, env)
    assert both.returncode == 0, both.stdout + both.stderr
    printed = json.loads(both.stdout)
    assert (printed["ok"], printed["restocked_units"], printed["ledger"]["ok"]) == (True, 2, True)

    txn = f"refund:{books.refunds[1].id}"
    changed = await entry_id(own, txn, 0)
    await sql(
        own,
        update(LedgerEntry)
        .where(col(LedgerEntry.id) == changed)
        .values(amount=col(LedgerEntry.amount) - 5),
    )
    for command in (ledger_only, with_deal):
        broken = await asyncio.to_thread(run, command, env)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        printed = json.loads(broken.stdout)
        assert printed["ok"] is False
        assert printed["ledger"]["unbalanced"] == [{"txn": txn, "currency": "USD", "sum": -5}]
