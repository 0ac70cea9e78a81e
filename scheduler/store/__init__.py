"""The broker's store: SQLModel tables behind a small repository interface.

SQLite is the embedded default, PostgreSQL the production store; one test suite
runs against both.
"""

from minga.scheduler.store.db import make_engines, normalize_url
from minga.scheduler.store.repository import Store

__all__ = ["Store", "make_engines", "normalize_url"]
