"""Job arrays (issue 12, point 4): each task is a job row that names its array, its
index there and the array's running cap (%K).

Revision ID: 0009_arrays
Revises: 0008_infra
Create Date: 2026-12-03 15:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_arrays"
down_revision = "0008_infra"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("array_id", sa.String(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("array_index", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("array_limit", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_jobs_array_id"), ["array_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_array_id"))
        batch_op.drop_column("array_limit")
        batch_op.drop_column("array_index")
        batch_op.drop_column("array_id")
