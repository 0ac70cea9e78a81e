"""Job dependencies (issue 15, part 1): what each job waits for (`job_dependencies`,
looked up by the job waited for), and on the jobs how many of a job's conditions are
unmet (a PENDING job with any is held out of the scheduling queue).

Revision ID: 0010_dependencies
Revises: 0009_arrays
Create Date: 2026-12-05 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_dependencies"
down_revision = "0009_arrays"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_dependencies",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("depends_on", sa.String(), nullable=False),
        sa.Column("condition", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "depends_on"),
    )
    with op.batch_alter_table("job_dependencies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_dependencies_depends_on"), ["depends_on"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_unmet", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("after_unmet")
    with op.batch_alter_table("job_dependencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_dependencies_depends_on"))
    op.drop_table("job_dependencies")
