"""Site lending policies (issue 5, site owners' control)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_lending",
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("policy_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )


def downgrade() -> None:
    op.drop_table("site_lending")
