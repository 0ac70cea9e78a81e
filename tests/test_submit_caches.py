"""The submit path's caches (scheduler.store.generations), on SQLite and PostgreSQL:
a token, the sites and a project are read once, then served from memory until a
commit changes their table, so revocations and new sites count at once."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from minga.common.domain import Role, Unauthenticated
from minga.scheduler.auth import TokenHasher
from minga.scheduler.store import Store
from minga.scheduler.store.accounts import TOKENS_TTL, User
from tests.test_store import NOW, add_institution, join_site, store, store_url  # noqa: F401 - the store fixtures


def reads_of(store: Store, table: str) -> list[int]:
    """A live count of the SELECTs that name `table`, on either engine."""
    counted = [0]

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            counted[0] += 1

    for engine in {store.db.engine, store.db.read_engine}:
        event.listen(engine, "before_cursor_execute", count)
    return counted


def test_a_token_is_read_once_and_revoked_at_once(store):
    accounts = store.accounts
    accounts.use_key(TokenHasher(b"k" * 32))
    add_institution(store)
    accounts.add_user(User("ana", "uchile", Role.RESEARCHER, NOW), accounts.hash("tok-ana"), NOW + 100)
    reads = reads_of(store, "tokens")
    assert [accounts.principal_for_token("tok-ana", NOW + i * 0.1).name for i in range(5)] == ["ana"] * 5
    assert reads[0] == 1
    assert accounts.principal_for_token("tok-ana", NOW + TOKENS_TTL).name == "ana" and reads[0] == 2
    with pytest.raises(Unauthenticated, match="expired"):  # expiry is checked on every call
        accounts.principal_for_token("tok-ana", NOW + 100)
    assert accounts.principal_for_token("tok-ana", NOW + 5).name == "ana"
    assert accounts.revoke("user", "ana", NOW + 5) == 1
    assert accounts.principal_for_token("tok-ana", NOW + 5) is None  # the very next call
    assert accounts.principal_for_token("never-issued", NOW) is None


def test_sites_and_projects_are_read_once_until_they_change(store):
    add_institution(store)
    reads = reads_of(store, "sites")
    assert store.sites.recent(NOW) == [] and store.sites.recent(NOW) == [] and reads[0] == 1
    join_site(store, "dcc")
    assert [s.name for s in store.sites.recent(NOW)] == ["dcc"]  # a new site counts at once
    assert store.shares.resolve_project("uchile", "", NOW) == "uchile/default"
    projects = reads_of(store, "projects")
    before = store.db.generations.of(("projects",))
    for _ in range(3):
        assert store.shares.resolve_project("uchile", "default", NOW) == "uchile/default"
    assert store.db.generations.of(("projects",)) == before and projects[0] == 1
