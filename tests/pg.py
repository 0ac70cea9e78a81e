"""The local PostgreSQL for tests: is it there, and a throwaway schema per test,
so tests never see each other's tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
import pytest

PG_URL = os.environ.get("MINGA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@lru_cache(maxsize=1)
def pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {exc}"


@contextmanager
def pg_schema() -> Iterator[str]:
    """A new empty schema, dropped afterwards; skips the test without PostgreSQL."""
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def url_in_schema(schema: str, url: str = PG_URL) -> str:
    """`url` with `schema` first on the search path."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
