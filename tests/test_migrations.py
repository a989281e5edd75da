"""Migrations on a real SQLite file holding data from before them: 0004 gives existing shops
unique storefront handles, and goes down and up again without losing a row."""

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
