"""Affiliate creators (decision 0046): shops' plans, their products and targeted creators, the
deals creators run under them, and each attributed order.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "affiliate_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("open_to_all", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_affiliate_plans_shop_id", "affiliate_plans", ["shop_id"])
    op.create_table(
        "affiliate_plan_products",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("max_discount_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint("rate_bp BETWEEN 1 AND 8000", name="affiliate_rate_in_range"),
        sa.CheckConstraint(
            "max_discount_bp BETWEEN 0 AND 9000", name="affiliate_discount_in_range"
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["affiliate_plans.id"]),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"]),
        sa.PrimaryKeyConstraint("plan_id", "product_id"),
    )
    op.create_index(
        "ix_affiliate_plan_products_product_id", "affiliate_plan_products", ["product_id"]
    )
    op.create_table(
        "affiliate_plan_creators",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("creator_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["affiliate_plans.id"]),
        sa.ForeignKeyConstraint(["creator_id"], ["sellers.id"]),
        sa.PrimaryKeyConstraint("plan_id", "creator_id"),
    )
    op.create_index(
        "ix_affiliate_plan_creators_creator_id", "affiliate_plan_creators", ["creator_id"]
    )
    op.create_table(
        "affiliate_deals",
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("creator_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"]),
        sa.ForeignKeyConstraint(["creator_id"], ["sellers.id"]),
        sa.ForeignKeyConstraint(["plan_id"], ["affiliate_plans.id"]),
        sa.PrimaryKeyConstraint("deal_id"),
    )
    op.create_index("ix_affiliate_deals_room_id", "affiliate_deals", ["room_id"])
    op.create_index("ix_affiliate_deals_creator_id", "affiliate_deals", ["creator_id"])
    op.create_index("ix_affiliate_deals_plan_id", "affiliate_deals", ["plan_id"])
    op.create_table(
        "affiliate_attributions",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("creator_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("base", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("rate_bp BETWEEN 1 AND 8000", name="attribution_rate"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["creator_id"], ["sellers.id"]),
        sa.ForeignKeyConstraint(["plan_id"], ["affiliate_plans.id"]),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("order_id"),
    )
    for column in ("room_id", "creator_id", "plan_id", "shop_id"):
        op.create_index(f"ix_affiliate_attributions_{column}", "affiliate_attributions", [column])


def downgrade() -> None:
    op.drop_table("affiliate_attributions")
    op.drop_table("affiliate_deals")
    op.drop_table("affiliate_plan_creators")
    op.drop_table("affiliate_plan_products")
    op.drop_table("affiliate_plans")
