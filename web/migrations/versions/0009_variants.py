"""Variants (decision 0028): products.options; skus.options, skus.combination (unique per
product) and skus.image_url.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every product made before this has no options, and its SKUs no values (NULL combination).
    # Columns are added in place (no table is rebuilt on SQLite).
    op.add_column(
        "products",
        sa.Column("options", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column(
        "skus", sa.Column("options", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
    )
    op.add_column("skus", sa.Column("combination", sa.String(length=400), nullable=True))
    op.add_column(
        "skus", sa.Column("image_url", sa.String(length=2000), nullable=False, server_default="")
    )
    # A unique index, not a table constraint: created and dropped in place on SQLite too (a
    # constraint would make SQLite rebuild skus, which deals and orders point at).
    op.create_index("sku_combination_unique", "skus", ["product_id", "combination"], unique=True)


def downgrade() -> None:
    # Plain column drops (SQLite 3.35+ drops an unindexed column in place): no table is
    # rebuilt, so rows that point at products and skus do not stop the downgrade.
    op.drop_index("sku_combination_unique", table_name="skus")
    op.drop_column("skus", "image_url")
    op.drop_column("skus", "combination")
    op.drop_column("skus", "options")
    op.drop_column("products", "options")
