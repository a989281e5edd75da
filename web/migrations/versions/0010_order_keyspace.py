"""Orders name the Redis key prefix of the deployment that sold them (orders.keyspace), so one
deployment's order rules (deadlines, requests, settlement) act on its own orders only. Orders
written before keep "" and every deployment's rules still take them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place on SQLite too: no table is rebuilt.
    op.add_column(
        "orders",
        sa.Column("keyspace", sa.String(length=40), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("orders", "keyspace")
