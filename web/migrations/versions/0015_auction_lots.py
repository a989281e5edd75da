"""Auction lots (decision 0031): a deal records its kind, ``flash`` (a flash deal) or ``lot``
(an auction's unit, sold only by the auction). Every deal before this migration is a flash
deal.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deals", sa.Column("kind", sa.String(length=8), nullable=False, server_default="flash")
    )


def downgrade() -> None:
    op.drop_column("deals", "kind")
