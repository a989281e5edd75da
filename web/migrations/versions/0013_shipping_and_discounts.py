"""Shipping fees, promotions and discounts on orders (decision 0028, slice 5): a shop's shipping
rule, its promotions (product discounts, bundles), and what each order was charged for shipping
and saved (per line, on shipping, the voucher's part, and which voucher).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD and DROP COLUMN (SQLite has both): a batch rebuild of shops or orders would drop a
# table every other table points at.
MONEY, CODE, KIND = sa.BigInteger(), sa.String(length=32), sa.String(length=16)
COLUMNS: dict[str, list[tuple[str, Any, str]]] = {  # table -> (column, type, default)
    "shops": [
        ("shipping_kind", KIND, "flat"),
        ("shipping_fee", MONEY, "0"),
        ("shipping_free_over", MONEY, "0"),
    ],
    "orders": [
        ("discount", MONEY, "0"),
        ("shipping_fee", MONEY, "0"),
        ("shipping_discount", MONEY, "0"),
        ("voucher", CODE, ""),
        ("voucher_discount", MONEY, "0"),
    ],
    "order_lines": [("discount", MONEY, "0")],
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        for name, kind, default in columns:
            op.add_column(table, sa.Column(name, kind, nullable=False, server_default=default))
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("bps", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("starts_ms", sa.BigInteger(), nullable=False),
        sa.Column("ends_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_promotions_shop_id", "promotions", ["shop_id"])


def downgrade() -> None:
    op.drop_index("ix_promotions_shop_id", table_name="promotions")
    op.drop_table("promotions")
    for table, columns in reversed(COLUMNS.items()):
        for name, _, _ in reversed(columns):
            op.drop_column(table, name)
