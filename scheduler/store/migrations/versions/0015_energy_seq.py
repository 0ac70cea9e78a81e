"""Number the ended runs' energy rows in the order they are written (`run_energy.seq`,
the primary key; `run_id` stays unique), so the energy metrics add only the rows written
since their last scrape instead of summing the whole table each time.

PostgreSQL: a SERIAL column numbers the existing rows in place. SQLite cannot add an
autoincrementing column, so the table is rebuilt with its rows copied in (ended_at, run_id)
order.

Revision ID: 0015_energy_seq
Revises: 0014_carbon
Create Date: 2026-12-05 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_energy_seq"
down_revision = "0014_carbon"
branch_labels = None
depends_on = None

_COLUMNS = "run_id, country, institution, project, ended_at, kwh, kgco2e, intensity, watts, pue, intensity_source"


def _columns() -> list[sa.Column[object]]:
    return [
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
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE run_energy ADD COLUMN seq SERIAL NOT NULL, DROP CONSTRAINT run_energy_pkey, "
            "ADD CONSTRAINT run_energy_pkey PRIMARY KEY (seq)"
        )
    else:
        op.create_table(
            "_run_energy_0015",
            *_columns(),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
            sqlite_autoincrement=True,
        )
        op.execute(
            f"INSERT INTO _run_energy_0015 ({_COLUMNS}) SELECT {_COLUMNS} FROM run_energy ORDER BY ended_at, run_id"
        )
        op.drop_table("run_energy")
        op.rename_table("_run_energy_0015", "run_energy")
    op.create_index("ix_run_energy_run_id", "run_energy", ["run_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_run_energy_run_id", table_name="run_energy")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE run_energy DROP CONSTRAINT run_energy_pkey, "
            "ADD CONSTRAINT run_energy_pkey PRIMARY KEY (run_id), DROP COLUMN seq"
        )
    else:
        op.create_table("_run_energy_0014", *_columns(), sa.PrimaryKeyConstraint("run_id"))
        op.execute(f"INSERT INTO _run_energy_0014 ({_COLUMNS}) SELECT {_COLUMNS} FROM run_energy")
        op.drop_table("run_energy")
        op.rename_table("_run_energy_0014", "run_energy")
