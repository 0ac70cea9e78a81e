"""Infrastructure hiccups never fail a researcher's job (issue 12, point 5): a job counts
the requeues the infrastructure caused apart from its own failures, and a run remembers
whether its site ever reported it, so a run its site's Ray forgot is never resent under
the same run id.

Revision ID: 0008_infra
Revises: 0007
Create Date: 2026-12-03 15:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_infra"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("infra_requeues", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reported_at", sa.Float(), server_default="0", nullable=False))
    # A live run from before this revision was reported if its site ever said anything of it.
    op.execute("UPDATE runs SET reported_at = created_at WHERE message != '' OR running_since > 0")


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("reported_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("infra_requeues")
