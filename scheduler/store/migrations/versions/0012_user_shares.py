"""Fair share down to each researcher: runs name their job's owner, and the user leaves of
the account tree get a decayed usage ledger and admin-set weights.

Revision ID: 0012_user_shares
Revises: 0009_arrays
Create Date: 2026-12-05 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_user_shares"
down_revision = "0011_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(), server_default="", nullable=False))
    op.create_table(
        "user_usage",
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("as_of", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("user"),
    )
    op.create_table(
        "user_weights",
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("user"),
    )


def downgrade() -> None:
    op.drop_table("user_weights")
    op.drop_table("user_usage")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("owner")
