"""Leases and requeue: a site's admin state apart from its health, and a job's
failure count and requeue backoff.

Before this revision `sites.state` mixed the two (READY, CORDONED, LOST). A
cordoned site keeps its cordon in `admin_state` and its health becomes READY; the
next cycle marks it LOST again if it is still silent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("not_before", sa.Float(), server_default="0", nullable=False))
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("admin_state", sa.String(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("health_message", sa.String(), server_default="", nullable=False))
    op.execute("UPDATE sites SET admin_state = 'CORDONED', state = 'READY' WHERE state = 'CORDONED'")


def downgrade() -> None:
    op.execute("UPDATE sites SET state = 'CORDONED' WHERE admin_state <> '' AND state <> 'LOST'")
    op.execute("UPDATE sites SET state = 'READY' WHERE state = 'DEGRADED'")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("health_message")
        batch_op.drop_column("admin_state")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("not_before")
        batch_op.drop_column("failures")
