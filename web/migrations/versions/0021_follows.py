"""Follows of sellers, reminders of scheduled rooms, and the notifications an account is told
when a room goes live (decision 0045); the room remembers when its followers were told.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "follows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "seller_id", name="one_follow"),
    )
    op.create_index("ix_follows_account_id", "follows", ["account_id"])
    op.create_index("ix_follows_seller_id", "follows", ["seller_id"])
    op.create_table(
        "room_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "room_id", name="one_reminder"),
    )
    op.create_index("ix_room_reminders_account_id", "room_reminders", ["account_id"])
    op.create_index("ix_room_reminders_room_id", "room_reminders", ["room_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("seller_name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("read_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "kind", "room_id", name="one_notice"),
    )
    op.create_index("ix_notifications_account_id", "notifications", ["account_id"])
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("followers_told_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("followers_told_ms")
    op.drop_index("ix_notifications_account_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_room_reminders_room_id", table_name="room_reminders")
    op.drop_index("ix_room_reminders_account_id", table_name="room_reminders")
    op.drop_table("room_reminders")
    op.drop_index("ix_follows_seller_id", table_name="follows")
    op.drop_index("ix_follows_account_id", table_name="follows")
    op.drop_table("follows")
