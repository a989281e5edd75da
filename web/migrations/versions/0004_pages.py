"""What the pages need: shop handles, shipping addresses and tracking on orders, a room's peak
viewer count

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:30:00
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _slug(name: str) -> str:
    # A copy of catalog.rules.handle_for as it was when this migration was written: migrations
    # must not change meaning when the application code does.
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower().replace("'", "")).strip("-")[:40]


def upgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handle", sa.String(length=60), nullable=True))
    shops = sa.table(
        "shops",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("handle", sa.String),
    )
    conn = op.get_bind()
    taken: set[str] = set()
    for shop_id, name in conn.execute(sa.select(shops.c.id, shops.c.name).order_by(shops.c.id)):
        handle = _slug(name) or f"shop-{shop_id}"
        if handle in taken:
            handle = f"{handle}-{shop_id}"
        taken.add(handle)
        conn.execute(shops.update().where(shops.c.id == shop_id).values(handle=handle))
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.alter_column("handle", existing_type=sa.String(length=60), nullable=False)
        batch_op.create_index(batch_op.f("ix_shops_handle"), ["handle"], unique=True)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipping", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("carrier", sa.String(length=60), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("tracking_number", sa.String(length=100), nullable=False, server_default="")
        )
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("peak_viewers", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.drop_column("peak_viewers")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("tracking_number")
        batch_op.drop_column("carrier")
        batch_op.drop_column("shipping")
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shops_handle"))
        batch_op.drop_column("handle")
