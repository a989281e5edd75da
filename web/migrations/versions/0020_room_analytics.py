"""Live analytics per room per minute (decision 0044): the minutes written when a room ends,
and the room's unique viewers.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
    "viewers",
    "unique_viewers",
    "followers",
    "likes",
    "chat",
    "impressions",
    "clicks",
    "carts",
)


def upgrade() -> None:
    op.create_table(
        "room_minutes",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("minute_ms", sa.BigInteger(), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS],
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
        sa.PrimaryKeyConstraint("room_id", "minute_ms"),
    )
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("unique_viewers", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("unique_viewers")
    op.drop_table("room_minutes")
