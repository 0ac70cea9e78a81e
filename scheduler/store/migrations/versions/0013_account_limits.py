"""Limits per user and per project (Slurm's QOS and association limits): the
`account_limits` table; and the owner of each run made before 0012_user_shares added
the column, which the limits per user count and the per-user ledger charges.

Revision ID: 0013_account_limits
Revises: 0012_user_shares
Create Date: 2026-12-05 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_account_limits"
down_revision = "0012_user_shares"
branch_labels = None
depends_on = None

_BACKFILL_OWNERS = """
UPDATE runs SET owner = (SELECT jobs.owner FROM jobs WHERE jobs.id = runs.job_id)
WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.id = runs.job_id)
"""


def upgrade() -> None:
    op.create_table(
        "account_limits",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("max_gpus", sa.Integer(), nullable=True),
        sa.Column("max_pending", sa.Integer(), nullable=True),
        sa.Column("max_walltime_seconds", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    # The runs made before 0012_user_shares: their job's owner.
    op.execute(_BACKFILL_OWNERS)


def downgrade() -> None:
    op.drop_table("account_limits")
