"""The shelf and list-price orders (decision 0028): skus.shelved, shelf_moves, order_lines, and
orders.deal_id may be NULL (an order from the shelf belongs to no deal).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("skus", sa.Column("shelved", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "shelf_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=80), nullable=False),
        sa.Column("keyspace", sa.String(length=40), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tag"),
    )
    op.create_index("ix_shelf_moves_sku_id", "shelf_moves", ["sku_id"])
    op.create_index("ix_shelf_moves_status", "shelf_moves", ["status"])
    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "line"),
    )
    op.create_index("ix_order_lines_order_id", "order_lines", ["order_id"])
    _deal_id_nullable(True)


def downgrade() -> None:
    # Below 0011 every order belongs to a deal. Orders sold off the shelf have none, and a paid
    # order is never dropped to make a downgrade fit: refuse, saying why and how many.
    shelf_orders = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM orders WHERE deal_id IS NULL")
    )
    if shelf_orders:
        raise RuntimeError(
            f"cannot downgrade below 0011: {shelf_orders} orders were sold off the shelf (no "
            "deal), and the older schema has no place for them; keep this version, or export "
            "and remove those orders first"
        )
    _deal_id_nullable(False)
    op.drop_index("ix_order_lines_order_id", table_name="order_lines")
    op.drop_table("order_lines")
    op.drop_index("ix_shelf_moves_status", table_name="shelf_moves")
    op.drop_index("ix_shelf_moves_sku_id", table_name="shelf_moves")
    op.drop_table("shelf_moves")
    op.drop_column("skus", "shelved")


def _deal_id_nullable(nullable: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("orders", "deal_id", existing_type=sa.Integer(), nullable=nullable)
        return
    # SQLite changes a column's NULL-ness only by rebuilding the table, and rebuilding orders
    # (dropping the old one) with foreign keys enforced would fail on every row pointing at it.
    # SQLite's own recipe: enforcement off outside a transaction, rebuild, check, back on.
    # Rows that broke a foreign key before (a hand-made database) are not this rebuild's doing.
    context = op.get_context()
    before = set(_foreign_key_problems())
    with context.autocommit_block():
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table("orders", recreate="always") as batch:
        batch.alter_column("deal_id", existing_type=sa.Integer(), nullable=nullable)
    broken = set(_foreign_key_problems()) - before
    with context.autocommit_block():
        op.execute("PRAGMA foreign_keys=ON")
    if broken:
        raise RuntimeError(f"rebuilding orders broke foreign keys: {sorted(broken)[:5]}")


def _foreign_key_problems() -> list[tuple[object, ...]]:
    """(table, row, parent table) of each row whose parent is missing (the key's number is left
    out: a rebuilt table numbers its keys anew)."""
    rows = op.get_bind().execute(sa.text("PRAGMA foreign_key_check")).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]
