"""Migrations on a real SQLite file holding data from before them: 0004 gives existing shops
unique storefront handles, 0005 leaves existing products on sale (not archived), and both go
down and up again without losing a row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

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
