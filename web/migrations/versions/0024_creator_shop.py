"""The shop a creator's affiliate deal pays its commissions into (decision 0054): the shop of
the room the deal runs in, written with the deal (the catalog knows nothing of rooms). Deals
made before it get their room's shop.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "affiliate_deals",
        sa.Column("creator_shop_id", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE affiliate_deals SET creator_shop_id = COALESCE("
        "(SELECT shop_id FROM rooms WHERE rooms.id = affiliate_deals.room_id), 0)"
    )


def downgrade() -> None:
    op.drop_column("affiliate_deals", "creator_shop_id")
