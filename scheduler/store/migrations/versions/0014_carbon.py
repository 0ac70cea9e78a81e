"""Energy and emissions (issue 16): grid intensities and PUE set by an admin (per
country, per site), GPU board powers set by an admin, and each ended run's estimate
with the figures it used (`minga.common.carbon`).

Revision ID: 0014_carbon
Revises: 0013_account_limits
Create Date: 2026-12-05 06:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_carbon"
down_revision = "0013_account_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "carbon_figures",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.Column("set_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )
    op.create_table(
        "run_energy",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=False),
        sa.Column("institution", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("kwh", sa.Float(), nullable=False),
        sa.Column("kgco2e", sa.Float(), nullable=False),
        sa.Column("intensity", sa.Float(), nullable=False),
        sa.Column("watts", sa.Float(), nullable=False),
        sa.Column("pue", sa.Float(), nullable=False),
        sa.Column("intensity_source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )


def downgrade() -> None:
    op.drop_table("run_energy")
    op.drop_table("carbon_figures")
