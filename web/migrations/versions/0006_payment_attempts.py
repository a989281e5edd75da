"""Payment attempts, written before the provider is called: payment_attempts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_key", sa.String(length=200), nullable=False),
        sa.Column("keyspace", sa.String(length=40), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=False),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("shipping", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_ref", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charge_key"),
    )
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_attempts_hold_id"), ["hold_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_attempts_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("payment_attempts")
