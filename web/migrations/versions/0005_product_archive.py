"""Products can be archived (a soft delete): products.archived_ms

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every product made before this is on sale (NULL), as it was.
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("archived_ms")
