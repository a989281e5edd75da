"""Migrations on a real SQLite file holding data from before them: 0004 gives existing shops
unique storefront handles, 0005 leaves existing products on sale (not archived), and both go
down and up again without losing a row; 0009 gives existing products no options; 0018's index
allows one default address per account. And the migrations build exactly the tables the
models declare."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import catalog.models
import checkout.models
import live.models
import people.models
from web.migrate import alembic_config


def test_shops_made_before_handles_get_unique_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0003")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sellers (id, name, email, token_hash, created_ms)"
            " VALUES (1, 'Mika', 'm@example.com', 'h', 0)"
        )
        for shop_id, name in [(1, "Mika's Closet"), (2, "Mika's Closet"), (3, "東京ショップ")]:
            db.execute(
                "INSERT INTO shops (id, seller_id, name, created_ms) VALUES (?, 1, ?, 0)",
                (shop_id, name),
            )
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        handles = db.execute("SELECT id, handle FROM shops ORDER BY id").fetchall()
    assert handles == [(1, "mikas-closet"), (2, "mikas-closet-2"), (3, "shop-3")]

    command.downgrade(config, "0003")
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM shops").fetchone() == (3,)
        assert db.execute("SELECT peak_viewers FROM rooms").fetchall() == []


def test_products_made_before_archiving_stay_on_sale(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0004")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sellers (id, name, email, token_hash, created_ms)"
            " VALUES (1, 'Mika', 'm@example.com', 'h', 0)"
        )
        db.execute(
            "INSERT INTO shops (id, seller_id, name, handle, created_ms)"
            " VALUES (1, 1, 'Mika', 'mika', 0)"
        )
        db.execute(
            "INSERT INTO products (id, shop_id, title, description, category, image_urls,"
            " created_ms) VALUES (1, 1, 'Jacket', '', '', '[]', 0)"
        )
    command.upgrade(config, "0005")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, title, archived_ms FROM products").fetchall() == [
            (1, "Jacket", None)
        ]
        db.execute("UPDATE products SET archived_ms = 1700000000000 WHERE id = 1")

    command.downgrade(config, "0004")
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(products)")]
        assert "archived_ms" not in columns
        assert db.execute("SELECT count(*) FROM products").fetchone() == (1,)
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT archived_ms FROM products").fetchall() == [(None,)]


def test_the_migrations_build_what_the_models_declare(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    command.upgrade(alembic_config(url), "head")
    assert {catalog.models.Sku.__tablename__, checkout.models.Order.__tablename__} <= set(
        SQLModel.metadata.tables
    )
    assert live.models  # its tables are declared too
    assert people.models.Passkey.__tablename__ in SQLModel.metadata.tables
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_products_made_before_variants_have_no_options(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0008")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sellers (id, name, email, token_hash, created_ms)"
            " VALUES (1, 'Mika', 'm@example.com', 'h', 0)"
        )
        db.execute(
            "INSERT INTO shops (id, seller_id, name, handle, created_ms)"
            " VALUES (1, 1, 'Mika', 'mika', 0)"
        )
        db.execute(
            "INSERT INTO products (id, shop_id, title, description, category, image_urls,"
            " created_ms) VALUES (1, 1, 'Jacket', '', '', '[]', 0)"
        )
        for sku_id in (1, 2):  # free-text names were never unique
            db.execute(
                "INSERT INTO skus (id, product_id, shop_id, variant, list_price, currency, stock,"
                " allocated) VALUES (?, 1, 1, 'M', 100, 'USD', 1, 0)",
                (sku_id,),
            )
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT options FROM products").fetchall() == [("[]",)]
        rows = db.execute("SELECT options, combination, image_url FROM skus").fetchall()
        assert rows == [("{}", None, ""), ("{}", None, "")]
    command.downgrade(config, "0008")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM skus").fetchone() == (2,)


def test_orders_survive_the_rebuild_that_lets_shelf_orders_have_no_deal(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0010")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sellers (id, name, email, token_hash, created_ms)"
            " VALUES (1, 'Mika', 'm@example.com', 'h', 0)"
        )
        db.execute(
            "INSERT INTO shops (id, seller_id, name, handle, created_ms)"
            " VALUES (1, 1, 'Mika', 'mika', 0)"
        )
        db.execute(
            "INSERT INTO products (id, shop_id, title, description, category, image_urls,"
            " created_ms) VALUES (1, 1, 'Jacket', '', '', '[]', 0)"
        )
        db.execute(
            "INSERT INTO skus (id, product_id, shop_id, variant, list_price, currency, stock,"
            " allocated) VALUES (1, 1, 1, 'M', 100, 'USD', 5, 0)"
        )
        db.execute(
            "INSERT INTO deals (id, shop_id, sku_id, deal_price, currency, quantity,"
            " per_buyer_limit, starts_ms, ends_ms, created_ms, status)"
            " VALUES (1, 1, 1, 80, 'USD', 5, 1, 0, 10, 0, 'settled')"
        )
        db.execute(
            "INSERT INTO orders (id, hold_id, deal_id, shop_id, sku_id, buyer_id, quantity,"
            " unit_price, total, currency, status, payment_ref, paid_ms, created_ms, updated_ms)"
            " VALUES (7, '1-1', 1, 1, 1, 'b', 1, 80, 80, 'USD', 'paid', 'ch_1', 0, 0, 0)"
        )
        db.execute(
            "INSERT INTO order_events (order_id, to_status, at_ms, actor, note)"
            " VALUES (7, 'paid', 0, 'pipeline', '')"
        )
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        assert db.execute("SELECT id, deal_id, total FROM orders").fetchall() == [(7, 1, 80)]
        assert db.execute("SELECT order_id FROM order_events").fetchall() == [(7,)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        db.execute(
            "INSERT INTO orders (id, hold_id, deal_id, shop_id, sku_id, buyer_id, quantity,"
            " unit_price, total, currency, status, payment_ref, paid_ms, created_ms, updated_ms)"
            " VALUES (8, 's1-1', NULL, 1, 1, 'b', 2, 100, 200, 'USD', 'paid', 'ch_2', 0, 0, 0)"
        )
    # A shelf order has no deal, which the schema below 0011 cannot hold: the downgrade refuses
    # and keeps it rather than dropping a paid order.
    with pytest.raises(RuntimeError, match="1 orders were sold off the shelf"):
        command.downgrade(config, "0010")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM orders WHERE deal_id IS NULL").fetchall() == [(8,)]
        db.execute("DELETE FROM orders WHERE id = 8")
    command.downgrade(config, "0010")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM order_events").fetchone() == (1,)
        columns = [row[1] for row in db.execute("PRAGMA table_info(skus)")]
        assert "shelved" not in columns


def test_orders_restocked_before_line_counts_have_them_laid_over_their_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0013")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys = OFF")  # only the order and its lines matter here
        required = [
            row[1]
            for row in db.execute("PRAGMA table_info(orders)")
            if row[3] and row[4] is None and row[1] != "id"
        ]
        for order_id, restocked in ((1, 3), (2, 0)):
            values = {name: 0 for name in required}
            values.update(id=order_id, hold_id=f"s1-{order_id}", quantity=4)
            values["restocked_units"] = restocked
            names = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            db.execute(f"INSERT INTO orders ({names}) VALUES ({marks})", list(values.values()))
            for line in (0, 1):
                db.execute(
                    "INSERT INTO order_lines (order_id, line, sku_id, quantity, unit_price)"
                    " VALUES (?, ?, ?, 2, 100)",
                    (order_id, line, 10 + line),
                )
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        found = db.execute(
            "SELECT order_id, line, restocked, refunded_units FROM order_lines ORDER BY id"
        ).fetchall()
    assert found == [(1, 0, 2, 0), (1, 1, 1, 0), (2, 0, 0, 0), (2, 1, 0, 0)]
    command.downgrade(config, "0013")
    command.upgrade(config, "head")


def test_an_account_has_one_default_address_whoever_writes(tmp_path: Path) -> None:
    """The partial unique index itself refuses a second default, and 0018 goes down and up."""
    path = tmp_path / "addresses.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "head")
    insert = (
        "INSERT INTO account_addresses (account_id, name, line1, line2, city, postal_code,"
        " country, is_default, created_ms)"
        " VALUES (1, 'Mina', '1 Road', '', 'Busan', '1', 'KR', ?, 0)"
    )
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO accounts (id, email, display_name, password_hash, buyer_id,"
            " session_epoch, created_ms) VALUES (1, 'm@example.com', 'Mina', 'h', 'b1', 0, 0)"
        )
        db.execute(insert, (True,))
        db.execute(insert, (False,))
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(insert, (True,))
    command.downgrade(config, "0017")
    with sqlite3.connect(path) as db:
        assert (
            db.execute("SELECT name FROM sqlite_master WHERE name = 'account_addresses'").fetchall()
            == []
        )
    command.upgrade(config, "head")


def insert_row(db: sqlite3.Connection, table: str, **values: object) -> None:
    """A row with ``values`` and a zero or an empty string in every other column that needs
    one (SQLite leaves foreign keys unchecked here: the rows stand alone)."""
    for _, name, kind, notnull, default, primary in db.execute(f"PRAGMA table_info({table})"):
        if notnull and default is None and not primary and name not in values:
            values[name] = "" if "CHAR" in kind.upper() or "TEXT" in kind.upper() else 0
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))


def test_commissions_of_orders_settled_before_0024_are_paid_into_the_rooms_shop(
    tmp_path: Path,
) -> None:
    """Decision 0054: 0024 gives each affiliate deal its room's shop and pays that shop what
    platform:commissions still holds for the deal's orders that had settled; an order not
    settled keeps its commission waiting for its settlement."""
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0023")
    with sqlite3.connect(path) as db:
        insert_row(db, "rooms", id=5, shop_id=7, seller_id=2, title="Creator live")
        insert_row(
            db, "affiliate_deals", deal_id=1, room_id=5, creator_id=2, plan_id=1, rate_bp=1500
        )
        for order_id, settled in ((10, 1_700_000_000_000), (11, None)):
            insert_row(
                db,
                "orders",
                id=order_id,
                deal_id=1,
                shop_id=3,
                currency="USD",
                settled_ms=settled,
                hold_id=f"h{order_id}",
                payment_ref=f"ch_{order_id}",
            )
            insert_row(
                db,
                "affiliate_attributions",
                order_id=order_id,
                room_id=5,
                creator_id=2,
                plan_id=1,
                shop_id=3,
                rate_bp=1500,
                base=18_000,
                currency="USD",
            )
            for line, account, amount in (
                (0, "shop:pending", 2700),
                (1, "platform:commissions", -2700),
            ):
                insert_row(
                    db,
                    "ledger_entries",
                    txn=f"commission:{order_id}",
                    line=line,
                    account=account,
                    shop_id=3,
                    amount=amount,
                    currency="USD",
                    reference=f"order:{order_id}",
                )
    command.upgrade(config, "head")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT creator_shop_id FROM affiliate_deals").fetchall() == [(7,)]
        paid = db.execute(
            "SELECT txn, line, account, shop_id, amount, reference FROM ledger_entries"
            " WHERE txn LIKE '%:paid' ORDER BY line"
        ).fetchall()
        pool = db.execute(
            "SELECT reference, SUM(amount) FROM ledger_entries"
            " WHERE account = 'platform:commissions' GROUP BY reference ORDER BY reference"
        ).fetchall()
    assert paid == [
        ("commission:10:paid", 0, "platform:commissions", 7, 2700, "order:10"),
        ("commission:10:paid", 1, "shop:available", 7, -2700, "order:10"),
    ]
    assert pool == [("order:10", 0), ("order:11", -2700)]  # 11 waits for its settlement
