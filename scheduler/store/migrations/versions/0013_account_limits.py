"""Limits per user and per project (Slurm's QOS and association limits): the
`account_limits` table, and each run's owner, which the limits per user count.

Revision ID: 0013_account_limits
Revises: 0009_arrays
Create Date: 2026-12-05 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_account_limits"
down_revision = "0009_arrays"
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
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(), server_default="", nullable=False))
    # The runs made before: their job's owner.
    op.execute(_BACKFILL_OWNERS)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("owner")
    op.drop_table("account_limits")
