"""Preemptions on the record (issue 10): a job keeps its last preemption, and the audit
log's lines about an institution's jobs (the scheduler's preemptions) name it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preempted_at", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("preempted_kind", sa.String(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("preempted_for", sa.String(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("preempted_reason", sa.String(), server_default="", nullable=False))
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("institution", sa.String(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_column("institution")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("preempted_reason")
        batch_op.drop_column("preempted_for")
        batch_op.drop_column("preempted_kind")
        batch_op.drop_column("preempted_at")
