"""Shipping fees and discounts on orders (decision 0028, slice 5): a shop's shipping rule, and
what each order was charged for shipping and saved (per line, on shipping, and which voucher).

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
    ],
    "order_lines": [("discount", MONEY, "0")],
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        for name, kind, default in columns:
            op.add_column(table, sa.Column(name, kind, nullable=False, server_default=default))


def downgrade() -> None:
    for table, columns in reversed(COLUMNS.items()):
        for name, _, _ in reversed(columns):
            op.drop_column(table, name)
