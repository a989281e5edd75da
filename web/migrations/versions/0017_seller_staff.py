"""A seller's staff (decision 0043): members with roles, e-mailed invitations, and API tokens
scoped to a role. Each seller's owner becomes a member once they join by the link
``livecart create-seller`` prints (sellers made before this keep their token, an owner's).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seller_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), sa.ForeignKey("sellers.id"), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seller_id", "account_id", name="one_membership"),
    )
    op.create_index("ix_seller_members_seller_id", "seller_members", ["seller_id"])
    op.create_index("ix_seller_members_account_id", "seller_members", ["account_id"])
    op.create_index(
        "one_owner",
        "seller_members",
        ["seller_id"],
        unique=True,
        sqlite_where=sa.text("role = 'owner'"),
        postgresql_where=sa.text("role = 'owner'"),
    )
    op.create_table(
        "seller_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), sa.ForeignKey("sellers.id"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("accepted_ms", sa.BigInteger(), nullable=True),
        sa.Column("accepted_by", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_seller_invitations_seller_id", "seller_invitations", ["seller_id"])
    op.create_table(
        "seller_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), sa.ForeignKey("sellers.id"), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_seller_tokens_seller_id", "seller_tokens", ["seller_id"])
    op.create_index("ix_seller_tokens_token_hash", "seller_tokens", ["token_hash"], unique=True)


def downgrade() -> None:
    op.drop_table("seller_tokens")
    op.drop_table("seller_invitations")
    op.drop_index("one_owner", table_name="seller_members")
    op.drop_table("seller_members")
