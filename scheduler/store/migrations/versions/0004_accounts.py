"""Accounts: token expiry, keyed token hashes (issue 5, roles and tokens)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 16:20:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
