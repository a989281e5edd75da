"""SKU allocation: units promised to started deals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("skus", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("allocated", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_check_constraint(
            "sku_allocation_in_stock", "allocated >= 0 AND allocated <= stock"
        )


def downgrade() -> None:
    with op.batch_alter_table("skus", schema=None) as batch_op:
        batch_op.drop_constraint("sku_allocation_in_stock", type_="check")
        batch_op.drop_column("allocated")
