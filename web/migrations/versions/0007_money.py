"""Money (decision 0027): ledger_entries, refunds, payouts, payment_events, money_cursors,
return_requests, return_events; orders gain fee, refund guards, deadlines; shops a payout method.

Existing orders get their ``sale:`` transaction with no fee, so every order has one; orders
already cancelled or refunded moved no money and are left for the audit to list.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_REQUESTS = "status IN ('requested','offered','approved','shipped_back','received')"


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_bps", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("refunded", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("restocked_units", sa.Integer(), server_default="0", nullable=False)
        )
        for name in (
            "ship_by_ms",
            "ship_limit_ms",
            "shipped_ms",
            "deliver_by_ms",
            "delivered_ms",
            "settled_ms",
        ):
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f("ix_orders_ship_limit_ms"), ["ship_limit_ms"])
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payout_method", sa.String(length=200), server_default="", nullable=False)
        )

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("txn", sa.String(length=80), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=60), nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_entries_amount_nonzero"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("txn", "line"),
    )
    op.create_index("ix_ledger_entries_account_currency", "ledger_entries", ["account", "currency"])
    op.create_index("ix_ledger_entries_shop_id_id", "ledger_entries", ["shop_id", "id"])
    op.create_index("ix_ledger_entries_reference", "ledger_entries", ["reference"])

    op.create_table(
        "refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("keyspace", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee_returned", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("shop_account", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deal_restock", sa.String(length=8), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_refunds_order_id", "refunds", ["order_id"])
    op.create_index("ix_refunds_status", "refunds", ["status"])

    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("keyspace", sa.String(length=40), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("utc_day", sa.String(length=10), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_payouts_shop_id", "payouts", ["shop_id"])
    op.create_index("ix_payouts_status", "payouts", ["status"])
    op.create_index(
        "ux_payouts_one_a_day",
        "payouts",
        ["shop_id", "currency", "utc_day"],
        unique=True,
        sqlite_where=sa.text("status <> 'failed'"),
        postgresql_where=sa.text("status <> 'failed'"),
    )

    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "money_cursors",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "return_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("buyer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("offer_amount", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.String(length=500), nullable=False),
        sa.Column("carrier", sa.String(length=60), nullable=False),
        sa.Column("tracking_number", sa.String(length=100), nullable=False),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["refund_id"], ["refunds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_return_requests_order_id", "return_requests", ["order_id"])
    op.create_index("ix_return_requests_buyer_id", "return_requests", ["buyer_id"])
    op.create_index("ix_return_requests_status", "return_requests", ["status"])
    op.create_index("ix_return_requests_updated_ms", "return_requests", ["updated_ms"])
    op.create_index(
        "ux_return_requests_one_open",
        "return_requests",
        ["order_id"],
        unique=True,
        sqlite_where=sa.text(OPEN_REQUESTS),
        postgresql_where=sa.text(OPEN_REQUESTS),
    )
    op.create_table(
        "return_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["return_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_return_events_request_id", "return_events", ["request_id"])

    # Every existing order gets its sale, with no fee: provider +G, shop pending -G.
    for line, account, sign in ((0, "platform:provider", ""), (1, "shop:pending", "-")):
        op.execute(
            "INSERT INTO ledger_entries"
            " (txn, line, account, shop_id, amount, currency, created_ms, reference)"
            f" SELECT 'sale:' || id, {line}, '{account}', shop_id, {sign}total, currency, paid_ms,"
            " 'order:' || id FROM orders WHERE total > 0"
        )


def downgrade() -> None:
    op.drop_table("return_events")
    op.drop_table("return_requests")
    op.drop_table("money_cursors")
    op.drop_table("payment_events")
    op.drop_table("payouts")
    op.drop_table("refunds")
    op.drop_table("ledger_entries")
    # ALTER TABLE ... DROP COLUMN, not a batch's copy of the table: on SQLite the copy drops
    # the old table, which foreign keys (on in the app's engine) refuse while products,
    # order_events and the like point at its rows. SQLite has dropped columns since 3.35, which
    # the pipeline's INSERT ... RETURNING needs anyway.
    op.drop_column("shops", "payout_method")
    op.drop_index("ix_orders_ship_limit_ms", table_name="orders")
    for name in (
        "settled_ms",
        "delivered_ms",
        "deliver_by_ms",
        "shipped_ms",
        "ship_limit_ms",
        "ship_by_ms",
        "restocked_units",
        "refunded",
        "fee_bps",
    ):
        op.drop_column("orders", name)
