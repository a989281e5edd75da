"""The shop a creator's affiliate deal pays its commissions into (decision 0054): the shop of
the room the deal runs in, written with the deal (the catalog knows nothing of rooms). Deals
made before it get their room's shop, and the commissions of their orders that settled before
it are paid into that shop now, as settlement pays them from now on.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 05:00:00
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What platform:commissions still holds for each order that settled before this revision, in
# a room whose shop is known: the amount each pays over (its lines summed, negated).
WAITING = """
    SELECT o.id AS order_id, d.creator_shop_id AS shop_id, o.currency AS currency,
           SUM(e.amount) AS held
    FROM orders o
    JOIN affiliate_attributions a ON a.order_id = o.id
    JOIN affiliate_deals d ON d.deal_id = o.deal_id
    JOIN ledger_entries e
      ON e.reference = 'order:' || CAST(o.id AS VARCHAR) AND e.account = 'platform:commissions'
    WHERE o.settled_ms IS NOT NULL AND d.creator_shop_id > 0
    GROUP BY o.id, d.creator_shop_id, o.currency
    HAVING SUM(e.amount) <> 0
"""


def upgrade() -> None:
    op.add_column(
        "affiliate_deals",
        sa.Column("creator_shop_id", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE affiliate_deals SET creator_shop_id = COALESCE("
        "(SELECT shop_id FROM rooms WHERE rooms.id = affiliate_deals.room_id), 0)"
    )
    # checkout.ledger.commission_paid, in SQL: the shop's line first, since the pool's line
    # empties what WAITING reads. Dated now: statements of past periods stay as they were.
    now = int(time.time() * 1000)
    for line, account, sign in ((1, "shop:available", 1), (0, "platform:commissions", -1)):
        op.get_bind().execute(
            sa.text(
                "INSERT INTO ledger_entries"
                " (txn, line, account, shop_id, amount, currency, created_ms, reference)"
                " SELECT 'commission:' || CAST(w.order_id AS VARCHAR)"
                " || ':' || CAST(:step AS VARCHAR),"
                " CAST(:line AS INTEGER), CAST(:account AS VARCHAR), w.shop_id,"
                " CAST(:sign AS INTEGER) * w.held, w.currency, CAST(:now AS BIGINT),"
                f" 'order:' || CAST(w.order_id AS VARCHAR) FROM ({WAITING}) w"
            ),
            {"step": "paid", "line": line, "account": account, "sign": sign, "now": now},
        )


def downgrade() -> None:
    op.drop_column("affiliate_deals", "creator_shop_id")
