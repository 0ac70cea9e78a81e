"""Accounts: when each token was last used (issue 5, roles and tokens).

The rest of issue 5's token work needs no schema change: expiry already has its
column, keyed hashes fit the `hash` key (marked by their "hmac-sha256:" prefix, so
legacy SHA-256 rows are told apart and re-keyed on their next use), and the token
key's fingerprint is a `meta` row. Existing tokens keep their expiry (none for
tokens issued before this revision); `minga admin token list` shows them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
