"""The ledger (decision 0027): the recipes of checkout/ledger.py, pure; the pipeline's sales in
SQL (one balanced ``sale:`` per order written, never two); ``ledger_store`` posting and summing
on a database of its own; and migration 0007 giving orders that existed before it their sale."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from checkout import ledger, ledger_store
from checkout.ledger import Account, Line, Transaction
from checkout.models import LedgerEntry, Order
from checkout.order_store import MoneyTerms, PaidOrder, persist_paid_orders
from kernel.db import Database
from tests.stores import Stores, paid
from web.migrate import alembic_config, upgrade

SHOP = 7


def totals(*txns: Transaction) -> Counter[Account]:
    """Each account's balance (the sum of its lines) over ``txns``, zero balances left out."""
    sums: Counter[Account] = Counter()
    for txn in txns:
        for line in txn.lines:
            sums[line.account] += line.amount
    return Counter({account: amount for account, amount in sums.items() if amount})


def granted(refund_id: int, amount: int, fee_back: int) -> Transaction:
    return ledger.refund_granted(refund_id, 41, SHOP, "USD", amount, fee_back, Account.PENDING)


# Pure: the recipes


def every_recipe() -> list[Transaction]:
    grant = granted(12, 3000, 150)
    return [
        ledger.sale(41, SHOP, "USD", 10_000, 500),
        grant,
        ledger.refund_succeeded(12, 41, SHOP, "USD", 3000),
        ledger.refund_failed(grant),
        ledger.settlement(41, SHOP, "USD", 6650),
        ledger.withdrawal(3, SHOP, "USD", 6650),
        ledger.payout_paid(3, SHOP, "USD", 6650),
        ledger.payout_failed(3, SHOP, "USD", 6650),
    ]


@pytest.mark.parametrize("txn", every_recipe(), ids=lambda t: t.txn)
def test_every_recipe_is_balanced(txn: Transaction) -> None:
    assert len(txn.lines) >= 2
    assert sum(line.amount for line in txn.lines) == 0
    assert all(line.amount != 0 for line in txn.lines)
    assert (txn.shop_id, txn.currency) == (SHOP, "USD")


def test_recipes_name_their_transactions_and_objects() -> None:
    assert [(t.txn, t.reference) for t in every_recipe()] == [
        ("sale:41", "order:41"),
        ("refund:12", "order:41"),
        ("refund:12:succeeded", "order:41"),
        ("refund:12:failed", "order:41"),
        ("settle:41", "order:41"),
        ("payout:3", "payout:3"),
        ("payout:3:paid", "payout:3"),
        ("payout:3:failed", "payout:3"),
    ]


def test_an_unbalanced_transaction_is_refused() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        Transaction(
            "sale:1", "order:1", SHOP, "USD", (Line(Account.PROVIDER, 100), Line(Account.FEES, -99))
        )
    with pytest.raises(ValueError, match="unbalanced"):
        Transaction("sale:1", "order:1", SHOP, "USD", (Line(Account.PROVIDER, 1),))


def test_the_fee_rounds_down() -> None:
    assert ledger.fee(10_000, 500) == 500
    assert ledger.fee(999, 500) == 49  # 49.95
    assert ledger.fee(19, 500) == 0  # 0.95
    assert ledger.fee(1, 9_999) == 0
    assert ledger.fee(12_345, 0) == 0


def test_zero_lines_are_left_out() -> None:
    assert ledger.sale(1, SHOP, "USD", 2500, 0).lines == (
        Line(Account.PROVIDER, 2500),
        Line(Account.PENDING, -2500),
    )
    assert len(ledger.sale(1, SHOP, "USD", 19, 500).lines) == 2  # its fee rounds to nothing
    assert granted(12, 1, 0).lines == (Line(Account.PENDING, 1), Line(Account.REFUNDS, -1))


def test_a_sale_owes_the_shop_its_total_less_the_fee() -> None:
    sale = ledger.sale(41, SHOP, "USD", 10_000, 500)
    assert sale.lines == (
        Line(Account.PROVIDER, 10_000),
        Line(Account.PENDING, -10_000),
        Line(Account.PENDING, 500),
        Line(Account.FEES, -500),
    )
    assert totals(sale) == {Account.PROVIDER: 10_000, Account.PENDING: -9500, Account.FEES: -500}


def test_a_failed_refund_undoes_its_grant() -> None:
    grant = granted(12, 3000, 150)
    failed = ledger.refund_failed(grant)
    assert failed.lines == tuple(Line(line.account, -line.amount) for line in grant.lines)
    assert totals(grant, failed) == {}


def refund_in_parts(total: int, fee_bps: int, parts: Sequence[int]) -> list[Transaction]:
    """A sale and a grant per part, each giving back the fee ``fee_returned`` says, from what the
    entries so far hold (as ledger_store.order_sum would read it)."""
    txns = [ledger.sale(41, SHOP, "USD", total, fee_bps)]
    refunded = 0
    for n, part in enumerate(parts):
        refunded += part
        held = -totals(*txns)[Account.FEES]
        fee_back = ledger.fee_returned(held, total, fee_bps, refunded)
        txns.append(granted(n + 1, part, fee_back))
    return txns


def test_a_fully_refunded_order_leaves_the_platform_no_fee() -> None:
    txns = refund_in_parts(999, 500, [1, 1, 997])
    # Nothing comes back while the fee on what is kept still rounds to 49; all of it at the end.
    assert [totals(t)[Account.FEES] for t in txns[1:]] == [0, 0, 49]
    assert totals(*txns) == {Account.PROVIDER: 999, Account.REFUNDS: -999}
    assert totals(*txns)[Account.FEES] == 0


def test_a_partly_refunded_order_keeps_the_fee_on_what_the_buyer_kept() -> None:
    txns = refund_in_parts(10_000, 500, [3000])
    assert totals(*txns)[Account.FEES] == -ledger.fee(7000, 500) == -350


@given(
    total=st.integers(1, 10**9),
    fee_bps=st.integers(0, 10_000),
    cuts=st.lists(st.floats(0, 1, exclude_min=True), max_size=8),
)
def test_fee_given_back_never_drifts_over_partial_refunds(
    total: int, fee_bps: int, cuts: list[float]
) -> None:
    # Split the total into parts that sum to it: the last part is what the others left.
    marks = sorted({min(total, max(1, int(total * c))) for c in cuts} - {total})
    parts = [b - a for a, b in zip([0, *marks], [*marks, total], strict=True)]
    txns = refund_in_parts(total, fee_bps, parts)
    refunded = 0
    for n, part in enumerate(parts):
        refunded += part
        kept = totals(*txns[: n + 2])
        assert -kept[Account.FEES] == ledger.fee(total - refunded, fee_bps)
    assert totals(*txns) == {Account.PROVIDER: total, Account.REFUNDS: -total}


def test_the_worked_example_ends_with_the_decisions_balances() -> None:
    """Decision 0027's order 41: 100.00 USD at 5 %, 30.00 refunded, settled, withdrawn."""
    sale = ledger.sale(41, SHOP, "USD", 10_000, 500)
    fee_back = ledger.fee_returned(500, 10_000, 500, refunded_after=3000)
    assert fee_back == 150
    txns = [
        sale,
        granted(12, 3000, fee_back),
        ledger.refund_succeeded(12, 41, SHOP, "USD", 3000),
    ]
    net = -totals(*txns)[Account.PENDING]  # the order's remaining pending share
    assert net == 6650
    txns += [
        ledger.settlement(41, SHOP, "USD", net),
        ledger.withdrawal(3, SHOP, "USD", net),
        ledger.payout_paid(3, SHOP, "USD", net),
    ]
    assert totals(*txns) == {
        Account.PROVIDER: 350,
        Account.FEES: -350,
        Account.PAID_OUT: -6650,
        Account.PAYOUTS: 6650,
    }  # pending, available, refunds: 0
    assert sum(totals(*txns).values()) == 0


def test_a_failed_payout_makes_the_money_available_again() -> None:
    withdrawn = ledger.withdrawal(3, SHOP, "USD", 6650)
    failed = ledger.payout_failed(3, SHOP, "USD", 6650)
    assert totals(ledger.settlement(41, SHOP, "USD", 6650), withdrawn, failed) == {
        Account.PENDING: 6650,
        Account.AVAILABLE: -6650,
    }


# SQL: the pipeline's sales


async def entries(db: Database, order_ids: Sequence[int | None]) -> list[LedgerEntry]:
    references = [f"order:{order_id}" for order_id in order_ids]
    async with db.session() as session:
        found = await session.exec(
            select(LedgerEntry)
            .where(col(LedgerEntry.reference).in_(references))
            .order_by(col(LedgerEntry.txn), col(LedgerEntry.line))
        )
        return list(found.all())


async def orders_by_hold(db: Database, batch: Sequence[PaidOrder]) -> list[Order]:
    async with db.session() as session:
        found = await session.exec(
            select(Order)
            .where(col(Order.hold_id).in_([p.hold_id for p in batch]))
            .order_by(col(Order.id))
        )
        return list(found.all())


def as_lines(rows: Sequence[LedgerEntry]) -> tuple[Line, ...]:
    return tuple(Line(Account(row.account), row.amount) for row in rows)


@pytest.mark.storage
async def test_persisting_a_batch_posts_one_balanced_sale_per_order(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=20, stock=20)
    batch = [paid(deal, f"{deal.id}-{n}", qty=n) for n in (1, 2, 3)]
    batch.append(paid(deal, f"{deal.id}-cheap")._replace(unit_price=19))  # fee rounds to 0
    async with stores.db.session() as session:
        result = await persist_paid_orders(session, batch, MoneyTerms(fee_bps=500))
    assert result.inserted == 4
    orders = await orders_by_hold(stores.db, batch)
    assert [o.fee_bps for o in orders] == [500] * 4
    for order in orders:
        rows = await entries(stores.db, [order.id])
        expected = ledger.sale(order.id or 0, deal.shop_id, "USD", order.total, 500)
        assert as_lines(rows) == expected.lines
        assert {(r.txn, r.reference, r.shop_id, r.currency) for r in rows} == {
            (f"sale:{order.id}", f"order:{order.id}", deal.shop_id, "USD")
        }
        assert [r.line for r in rows] == list(range(len(rows)))
        assert sum(r.amount for r in rows) == 0
    assert [len(await entries(stores.db, [o.id])) for o in orders] == [4, 4, 4, 2]
    first = await entries(stores.db, [orders[1].id])
    assert [r.amount for r in first] == [5000, -5000, 250, -250]
    async with stores.db.session() as session:
        conn = await session.connection()
        assert await ledger_store.order_sum(conn, orders[2].id or 0, Account.FEES) == -375
        assert await ledger_store.order_sum(conn, orders[2].id or 0, Account.PENDING) == -7125
        listed = await ledger_store.entries_of(conn, f"order:{orders[2].id}")
    assert as_lines(listed) == ledger.sale(0, 0, "USD", 7500, 500).lines


@pytest.mark.storage
async def test_a_batch_without_a_fee_posts_two_lines_per_order(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10, stock=10)
    batch = [paid(deal, f"{deal.id}-{n}", qty=2) for n in range(3)]
    async with stores.db.session() as session:
        await persist_paid_orders(session, batch, MoneyTerms(fee_bps=0))
    orders = await orders_by_hold(stores.db, batch)
    assert [o.fee_bps for o in orders] == [0, 0, 0]
    for order in orders:
        assert as_lines(await entries(stores.db, [order.id])) == (
            Line(Account.PROVIDER, 5000),
            Line(Account.PENDING, -5000),
        )


@pytest.mark.storage
async def test_persisting_the_same_batch_again_posts_nothing_more(stores: Stores) -> None:
    deal = await stores.live_deal(quantity=10, stock=10)
    batch = [paid(deal, f"{deal.id}-{n}") for n in range(3)]
    async with stores.db.session() as session:
        await persist_paid_orders(session, batch)
    order_ids = [o.id for o in await orders_by_hold(stores.db, batch)]
    before = await entries(stores.db, order_ids)
    assert len(before) == 3 * 4
    # Redelivered, and mixed with one new order: only the new one is posted.
    more = paid(deal, f"{deal.id}-late")
    async with stores.db.session() as session:
        again = await persist_paid_orders(session, [*batch, more])
    assert (again.inserted, again.duplicates) == (1, 3)
    assert await entries(stores.db, order_ids) == before
    new = await orders_by_hold(stores.db, [more])
    assert len(await entries(stores.db, [new[0].id])) == 4


# SQL: ledger_store on a database of its own (the fake orders and payouts below would otherwise
# be findings for whatever audits the shared test database)


@pytest.fixture
def own_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)  # synchronous: alembic runs its own event loop
    return url


@pytest.fixture
async def own_db(own_url: str) -> AsyncIterator[Database]:
    database = Database(own_url)
    yield database
    await database.close()


def worked_example(net: int = 6650) -> list[Transaction]:
    return [
        ledger.sale(41, SHOP, "USD", 10_000, 500),
        granted(12, 3000, 150),
        ledger.refund_succeeded(12, 41, SHOP, "USD", 3000),
        ledger.settlement(41, SHOP, "USD", net),
        ledger.withdrawal(3, SHOP, "USD", net),
        ledger.payout_paid(3, SHOP, "USD", net),
    ]


async def test_posted_transactions_sum_to_the_shops_balances(own_db: Database) -> None:
    first, *rest = worked_example()
    async with own_db.session() as session:
        conn = await session.connection()
        await ledger_store.post(conn, first, at_ms=1000)
        await session.commit()
    async with own_db.session() as session:
        conn = await session.connection()
        for txn in rest:
            await ledger_store.post(conn, txn, at_ms=2000)
        await session.commit()
    async with own_db.session() as session:
        conn = await session.connection()
        # What the platform owes the shop: the negated sums.
        assert await ledger_store.balances(conn, SHOP) == {
            (Account.PENDING, "USD"): 0,
            (Account.AVAILABLE, "USD"): 0,
            (Account.PAID_OUT, "USD"): 6650,
        }
        assert await ledger_store.balances(conn, SHOP, until_ms=2000) == {
            (Account.PENDING, "USD"): 9500
        }
        assert await ledger_store.balances(conn, SHOP + 1) == {}
        assert await ledger_store.order_sum(conn, 41, Account.FEES) == -350
        assert await ledger_store.order_sum(conn, 42, Account.FEES) == 0
        payout = await ledger_store.entries_of(conn, "payout:3")
        total = (await conn.execute(select(func.sum(col(LedgerEntry.amount))))).scalar_one()
    assert [(e.txn, e.line, e.account, e.amount) for e in payout] == [
        ("payout:3", 0, "shop:available", 6650),
        ("payout:3", 1, "shop:paid_out", -6650),
        ("payout:3:paid", 0, "platform:provider", -6650),
        ("payout:3:paid", 1, "platform:payouts", 6650),
    ]
    assert total == 0


async def test_posting_a_transaction_twice_rolls_the_whole_change_back(own_db: Database) -> None:
    sale = ledger.sale(41, SHOP, "USD", 10_000, 500)
    async with own_db.session() as session:
        await ledger_store.post(await session.connection(), sale)
        await session.commit()
    async with own_db.session() as session:
        conn = await session.connection()
        await ledger_store.post(conn, ledger.settlement(41, SHOP, "USD", 9500))
        with pytest.raises(IntegrityError):
            await ledger_store.post(conn, sale)
        await session.rollback()
    async with own_db.session() as session:
        conn = await session.connection()
        assert await ledger_store.entries_of(conn, "order:41") != []
        assert [e.txn for e in await ledger_store.entries_of(conn, "order:41")] == ["sale:41"] * 4


# Migration 0007


def test_orders_made_before_the_ledger_get_their_sale(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0006")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sellers (id, name, email, token_hash, created_ms)"
            " VALUES (1, 'Mika', 'm@example.com', 'h', 0)"
        )
        db.execute(
            "INSERT INTO shops (id, seller_id, name, handle, created_ms)"
            " VALUES (7, 1, 'Mika', 'mika', 0)"
        )
        db.execute(
            "INSERT INTO products (id, shop_id, title, description, category, image_urls,"
            " created_ms) VALUES (1, 7, 'Jacket', '', '', '[]', 0)"
        )
        db.execute(
            "INSERT INTO skus (id, product_id, shop_id, variant, list_price, currency, stock)"
            " VALUES (1, 1, 7, 'M', 3000, 'USD', 10)"
        )
        db.execute(
            "INSERT INTO deals (id, shop_id, sku_id, deal_price, currency, quantity,"
            " per_buyer_limit, starts_ms, ends_ms, status, created_ms)"
            " VALUES (1, 7, 1, 2500, 'USD', 5, 1, 0, 1000, 'settled', 0)"
        )
        for order_id, qty, status in [(41, 4, "paid"), (42, 1, "cancelled")]:
            db.execute(
                "INSERT INTO orders (id, hold_id, deal_id, shop_id, sku_id, buyer_id, quantity,"
                " unit_price, total, currency, status, payment_ref, paid_ms, created_ms,"
                " updated_ms) VALUES (?, ?, 1, 7, 1, 'b', ?, 2500, ?, 'USD', ?, 'ch_1', 500,"
                " 600, 600)",
                (order_id, f"h{order_id}", qty, qty * 2500, status),
            )
            db.execute(  # rows pointing at the order: its table must not be copied and dropped
                "INSERT INTO order_events (order_id, to_status, at_ms, actor, note)"
                " VALUES (?, 'paid', 600, 'pipeline', '')",
                (order_id,),
            )
    command.upgrade(config, "head")

    def sales() -> list[tuple[object, ...]]:
        with sqlite3.connect(path) as db:
            return db.execute(
                "SELECT txn, line, account, shop_id, amount, currency, created_ms, reference"
                " FROM ledger_entries ORDER BY txn, line"
            ).fetchall()

    # Every order, whatever its status: a cancelled one moved no money, which the audit lists.
    expected = [
        ("sale:41", 0, "platform:provider", 7, 10_000, "USD", 500, "order:41"),
        ("sale:41", 1, "shop:pending", 7, -10_000, "USD", 500, "order:41"),
        ("sale:42", 0, "platform:provider", 7, 2500, "USD", 500, "order:42"),
        ("sale:42", 1, "shop:pending", 7, -2500, "USD", 500, "order:42"),
    ]
    assert sales() == expected
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, fee_bps, refunded FROM orders ORDER BY id").fetchall() == [
            (41, 0, 0),
            (42, 0, 0),
        ]
        assert db.execute("SELECT payout_method FROM shops").fetchall() == [("",)]

    command.downgrade(config, "0006")
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "ledger_entries" not in tables
        columns = [row[1] for row in db.execute("PRAGMA table_info(orders)")]
        assert "fee_bps" not in columns
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (2,)
    command.upgrade(config, "head")
    assert sales() == expected  # posted again from the orders, once
