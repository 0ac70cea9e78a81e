"""Secret job environment values (issue 5, secrets)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 16:20:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
