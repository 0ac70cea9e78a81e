"""Secret job environment values (issue 5, secrets): their own jobs column, so the
displayed spec (spec_json) never holds one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_env_json", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("secret_env_json")
