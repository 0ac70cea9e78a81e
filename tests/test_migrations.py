"""Schema migrations: stores of the first release upgrade in place with their data, the
migrations build exactly what the models describe, and stores this minga cannot read are
refused. SQLite and PostgreSQL, each database fresh (a file, or a schema dropped afterwards).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from minga.common.clock import FakeClock
from minga.common.domain import FailedPrecondition, JobState, Role, RunState, SiteState
from minga.common.site_messages import RunReport
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.leases import SiteLeases
from minga.scheduler.policy import schedule
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store, migrations
from minga.scheduler.store.db import normalize_url
from minga.scheduler.store.migrations.__main__ import main as migrations_cli
from tests.pg import PG_URL, pg_unreachable
from tests.test_store import new_job

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_700_000_000.0  # the fixtures' clock
DIGEST = "sha256:" + "ab" * 32

# -- fresh databases ------------------------------------------------------------------

NewUrl = Callable[[], str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    if request.param == "postgres" and pg_unreachable():
        pytest.skip(pg_unreachable())
    return request.param


@pytest.fixture
def new_url(backend, tmp_path) -> Iterator[NewUrl]:
    """Makes as many empty databases of the backend as a test needs."""
    schemas: list[str] = []

    def make() -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"

    yield make
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def engine_for(url: str) -> Engine:
    return create_engine(normalize_url(url))


def load_first_release(url: str) -> None:
    """The committed dump of a store the first release made and used (see the fixture's header)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executescript((FIXTURES / "schema_0001_sqlite.sql").read_text())
        return
    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(PG_URL, options=f"-csearch_path={schema}") as conn:
        conn.execute((FIXTURES / "schema_0001_postgres.sql").read_text())


def version_of(url: str) -> list[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


# -- (a)+(d) a first-release store, with data, upgrades in place --------------------------


def test_a_first_release_store_upgrades_with_its_data_intact(new_url):
    url = new_url()
    load_first_release(url)
    assert "alembic_version" not in inspect_tables(url)

    store = Store(url)
    try:
        assert version_of(url) == [migrations.head()]
        assert_first_release_data(store)
        assert_still_writable(store)
    finally:
        store.close()

    reopened = Store(url)  # a second start finds it versioned and leaves it be
    try:
        assert version_of(url) == [migrations.head()]
        assert reopened.jobs.get("job-new").state is JobState.RUNNING
    finally:
        reopened.close()


def assert_first_release_data(store: Store) -> None:
    assert [(i.slug, i.country, i.weight) for i in store.accounts.list_institutions()] == [
        ("uchile", "CL", 1.0),
        ("unam", "MX", 2.0),
    ]
    assert [(u.name, u.institution, u.role) for u in store.accounts.list_users()] == [
        ("admin", "", Role.ADMIN),
        ("ana", "uchile", Role.RESEARCHER),
        ("beto", "unam", Role.ADMIN),
    ]
    ana = store.accounts.principal_for("hash-ana", NOW)
    assert (ana.name, ana.role, ana.institution) == ("ana", Role.RESEARCHER, "uchile")
    dcc = store.accounts.principal_for("hash-site-dcc", NOW)
    assert (dcc.role, dcc.site) == (Role.SITE, "dcc")
    assert store.accounts.principal_for("hash-join-dcc", NOW) is None  # join tokens never authenticate

    sites = {s.name: s for s in store.sites.list()}
    assert sites["dcc"].institution == "uchile" and sites["dcc"].state is SiteState.READY
    assert sites["dcc"].labels == (("net", "ib"), ("rack", "r1"))
    assert [(p.model, p.total) for p in sites["dcc"].inventory.gpus] == [("A100", 8)]
    assert sites["lab"].state is SiteState.CORDONED and sites["lab"].country == "MX"
    assert store.sites.gpus_in_use() == {"dcc": {"A100": 2}}

    running = store.jobs.get("job-run")
    assert (running.state, running.site, running.run_id) == (JobState.RUNNING, "dcc", "minga-job-run-a1")
    assert running.spec.walltime_seconds == 7200 and running.spec.runtime_env.env == (("SEED", "7"),)
    assert running.spec.runtime_env.working_dir_digest == DIGEST
    assert store.jobs.get("job-done").state is JobState.SUCCEEDED
    assert store.jobs.get("job-wait").state is JobState.PENDING
    assert store.jobs.find_by_key("ana", "idem-1").id == "job-run"
    again, created = store.jobs.submit(new_job("job-run-retry"), "idem-1")
    assert (again.id, created) == ("job-run", False)  # the unique (owner, key) survived

    assert store.blobs.read_log("minga-job-run-a1", 0) == [(0, b"epoch 1 loss 2.31\n"), (18, b"epoch 2 loss 1.97\n")]
    assert store.blobs.get_package(DIGEST) == b"PK\x03\x04 a zip"

    assert [(p.id, p.weight) for p in store.shares.list_projects()] == [
        ("uchile/default", 1.0),
        ("uchile/llm", 3.0),
        ("unam/default", 1.0),
    ]
    assert store.shares.settings().half_life_seconds == 86400.0
    snapshot = store.runs.load_snapshot(NOW + 1200)
    assert [r.id for r in snapshot.live_runs] == ["minga-job-run-a1"]
    assert [j.id for j in snapshot.pending] == ["job-wait"]
    assert dict(snapshot.country_weights) == {"CL": 1.5}
    assert dict(snapshot.usage)["uchile/llm"] > 0
    institutions = {i.slug: i for i in snapshot.institutions}
    assert institutions["uchile"].guarantee == (("A100", 4),) and institutions["uchile"].contribution > 0
    assert (institutions["unam"].borrowing_limit, institutions["unam"].lending_limit) == (8, 2)

    by_institution = {line.key: line for line in store.reports.usage(NOW, NOW + 1200, "institution")}
    assert by_institution["uchile"].consumed_gpu_hours > 0
    assert by_institution["uchile"].contributed_gpu_hours > 0


def assert_still_writable(store: Store) -> None:
    """New rows go in next to the old ones: autoincrement ids and the policy's cycle work."""
    store.blobs.append_log("dcc", "minga-job-run-a1", 36, b"epoch 3 loss 1.80\n")
    assert store.blobs.read_log("minga-job-run-a1", 36) == [(36, b"epoch 3 loss 1.80\n")]
    store.jobs.submit(new_job("job-new", gpus=2, models=("A100",)), None)
    started = store.runs.apply_decisions(schedule(store.runs.load_snapshot(NOW + 1300), NOW + 1300), NOW + 1300)
    assert [c.run.job_id for c in started] == ["job-new"]
    store.runs.apply_report("dcc", RunReport(started[0].run.id, RunState.RUNNING), NOW + 1310)
    cycle = SchedulingCycle(store, SessionRegistry(), FakeClock(NOW + 1400), SiteLeases(FakeClock(NOW + 1400)))
    cycle.charge(NOW + 1400)  # the leader's state loads from the migrated store, and charges it
    cycle.detach()


# -- (b) the migrations build exactly what the models describe ----------------------------


def test_upgrade_to_head_builds_exactly_what_the_models_describe(new_url):
    """The guard: a model changed without a migration fails here, on both backends."""
    migrated, created = new_url(), new_url()
    engine = engine_for(migrated)
    with engine.begin() as conn:
        migrations.upgrade(conn)
    engine.dispose()
    engine = engine_for(created)
    SQLModel.metadata.create_all(engine)
    engine.dispose()

    want = schema_of(created)
    got = schema_of(migrated)
    assert set(got) == set(want) | {"alembic_version"}
    for table in want:
        assert got[table] == want[table], table


def test_alembic_check_finds_no_model_change_without_a_revision():
    migrations_cli(["check"])  # raises SystemExit naming the differences


def schema_of(url: str) -> dict[str, dict[str, object]]:
    """Every table's columns (type, nullability, server default), keys, unique constraints and indexes."""
    engine = engine_for(url)
    try:
        found = inspect(engine)
        return {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in found.get_columns(table)
                ],
                "primary_key": found.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted((u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)
                ),
                "foreign_keys": sorted(str(fk) for fk in found.get_foreign_keys(table)),
            }
            for table in found.get_table_names()
        }
    finally:
        engine.dispose()


def inspect_tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_revision_0001_is_the_first_release_schema(new_url):
    """Revision 0001 builds what the first release's create_all built (the committed dump)."""
    migrated, released = new_url(), new_url()
    engine = engine_for(migrated)
    with engine.begin() as conn:
        migrations.upgrade(conn, migrations.FIRST_RELEASE)
    engine.dispose()
    load_first_release(released)
    want = schema_of(released)
    got = schema_of(migrated)
    assert set(got) == set(want) | {"alembic_version"}
    for table in want:
        assert got[table] == want[table], table


# -- (c) stores this minga cannot read are refused -----------------------------------------


def test_a_store_upgraded_by_a_newer_minga_is_refused(new_url):
    url = new_url()
    Store(url).close()
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(
        FailedPrecondition,
        match=r"schema revision 9999, which this minga does not know "
        rf"\(its newest is {migrations.head()}\)",
    ):
        Store(url)


def test_an_unversioned_store_that_is_not_the_first_release_is_refused(new_url):
    url = new_url()
    load_first_release(url)
    engine = engine_for(url)
    with engine.begin() as conn:  # what a pre-release minga made: no `walltime_seconds` on runs
        conn.execute(text("ALTER TABLE runs DROP COLUMN walltime_seconds"))
        conn.execute(text("DROP TABLE meta"))
    engine.dispose()
    with pytest.raises(
        FailedPrecondition,
        match="no schema version and is not one of minga's first release: it lacks meta, runs.walltime_seconds",
    ):
        Store(url)
    assert "alembic_version" not in inspect_tables(url)  # nothing was written


def test_other_applications_tables_are_left_alone(new_url):
    url = new_url()
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    Store(url).close()
    assert {"someone_elses", "jobs", "alembic_version"} <= inspect_tables(url)
    assert version_of(url) == [migrations.head()]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_brokers_starting_together_upgrade_once(new_url):
    """The advisory lock: without it the CREATE TABLEs of concurrent starts collide."""
    url = new_url()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            Store(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert version_of(url) == [migrations.head()]


def test_0015_numbers_the_energy_rows_already_written(new_url):
    """A store at 0014 with estimates keeps them; each gets a distinct seq, and rows written
    afterwards get higher ones (the energy metrics' watermark)."""
    url = new_url()
    engine = engine_for(url)
    with engine.begin() as conn:
        migrations.upgrade(conn, "0014_carbon")
        for run_id, ended in (("r-b", 2.0), ("r-a", 1.0)):
            conn.execute(
                text(
                    "INSERT INTO run_energy (run_id, country, institution, project, ended_at, kwh, kgco2e, "
                    "intensity, watts, pue, intensity_source) VALUES (:r, 'CL', 'uchile', 'uchile/p', :e, 1.5, "
                    "0.5, 291.0, 400.0, 1.5, 'default')"
                ),
                {"r": run_id, "e": ended},
            )
    engine.dispose()
    store = Store(url)
    try:
        assert store.carbon.energy_since(0).by_country["CL"] == (3.0, 1.0)
        with store.db.tx() as s:
            s.execute(
                text(
                    "INSERT INTO run_energy (run_id, country, institution, project, ended_at, kwh, kgco2e, "
                    "intensity, watts, pue, intensity_source) VALUES ('r-c', 'CL', '', '', 3.0, 2.0, 1.0, 0, 0, 0, '')"
                )
            )
            seqs = dict(s.execute(text("SELECT run_id, seq FROM run_energy")).all())
    finally:
        store.close()
    assert len(set(seqs.values())) == 3
    assert seqs["r-c"] > max(seqs["r-a"], seqs["r-b"])
