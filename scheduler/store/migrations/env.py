"""Alembic's entry point: runs the migrations on the connection the caller passes in
`config.attributes["connection"]` (see `alembic_config`); there is no URL or ini file."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from minga.scheduler.store import models  # noqa: F401 - registers the tables for --autogenerate


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """SQLModel's `str` columns are written as plain `sa.String()`, so revisions need no sqlmodel import."""
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("minga's migrations run on a connection: pass it in config.attributes['connection']")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # ALTERs as batch operations: SQLite rebuilds the table, PostgreSQL alters in place
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
