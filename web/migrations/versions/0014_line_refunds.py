"""Refunds by line (decision 0028): each order line counts its units whose money went back
(``refunded_units``) and its units back in stock (``restocked``), so a refund can name the
lines it covers and the next one knows which units are left. Orders restocked before this
migration have their restocked units laid over their lines in line order, as the refunds
then put them back.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("refunded_units", "restocked")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column(
            "order_lines", sa.Column(name, sa.Integer(), nullable=False, server_default="0")
        )
    conn = op.get_bind()
    orders = conn.execute(
        sa.text(
            "SELECT DISTINCT o.id, o.restocked_units FROM orders o"
            " JOIN order_lines l ON l.order_id = o.id WHERE o.restocked_units > 0"
        )
    ).all()
    for order_id, restocked in orders:
        lines = conn.execute(
            sa.text("SELECT id, quantity FROM order_lines WHERE order_id = :o ORDER BY line"),
            {"o": order_id},
        ).all()
        for line_id, quantity in lines:
            back = min(quantity, restocked)
            restocked -= back
            conn.execute(
                sa.text("UPDATE order_lines SET restocked = :n WHERE id = :i"),
                {"n": back, "i": line_id},
            )


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("order_lines", name)
