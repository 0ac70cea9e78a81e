"""One store suite, run against a real SQLite file and a real PostgreSQL server.

Every test gets a fresh database: a new SQLite file in tmp_path, or a new
PostgreSQL schema (selected through `search_path` in the URL) that is dropped
afterwards, so runs never see each other's rows and leave no tables behind.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from minga.common.domain import (
    AlreadyExists,
    FailedPrecondition,
    GpuPool,
    Inventory,
    Job,
    JobSpec,
    JobState,
    NotFound,
    Principal,
    Resources,
    Role,
    RunState,
    RuntimeEnv,
    SiteState,
)
from minga.common.site_messages import RunReport, StartRunCommand, StopRunCommand
from minga.scheduler.policy import Decisions, Placement, Snapshot, Waiting, schedule
from minga.scheduler.store import Store
from minga.scheduler.store.accounts import Institution, User
from minga.scheduler.store.models import JobRow, RunRow, TokenRow
from tests.pg import PG_URL, pg_schema, pg_unreachable, url_in_schema  # noqa: F401 - PG_URL, pg_unreachable: re-exported

NOW = 1_700_000_000.0
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    with pg_schema() as schema:
        yield url_in_schema(schema)


@pytest.fixture
def store(store_url) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


# -- helpers ---------------------------------------------------------------------


def inventory(*pools: tuple[str, int], cpus: float = 64.0) -> Inventory:
    return Inventory(gpus=tuple(GpuPool(m, 81_920, n, n, n) for m, n in pools), cpus=cpus, nodes=1)


def add_institution(store: Store, slug: str = "uchile", country: str = "CL") -> None:
    store.accounts.add_institution(Institution(slug, slug.upper(), country), NOW)


def join_site(
    store: Store,
    name: str,
    institution: str = "uchile",
    country: str = "CL",
    inv: Inventory | None = None,
    site_token: str | None = None,
) -> str:
    """Join and connect a site through the repository, as the join RPC and Hello do."""
    site_token = site_token or f"site-token-{name}-{uuid.uuid4().hex}"
    join = f"join-{uuid.uuid4().hex}"
    store.accounts.add_join_token(join, institution, name, country, NOW, NOW + 3600)
    store.accounts.redeem_join_token(join, site_token, NOW)
    store.sites.connected(name, inv or inventory(("A100", 8)), NOW)
    return site_token


def new_job(
    jid: str,
    gpus: int = 1,
    owner: str = "ana",
    institution: str = "uchile",
    submitted: float = 0.0,
    models: tuple[str, ...] = (),
    digest: str = "",
) -> Job:
    spec = JobSpec(
        entrypoint="python train.py",
        name=jid,
        runtime_env=RuntimeEnv(working_dir_digest=digest),
        resources=Resources(gpus=gpus, gpu_models=models, cpus=1.0),
    )
    return Job(
        id=jid,
        spec=spec,
        state=JobState.PENDING,
        owner=owner,
        institution=institution,
        submitted_at=NOW + submitted,
        reason="waiting",
    )


def submit(store: Store, jid: str, **kw) -> Job:
    job, created = store.jobs.submit(new_job(jid, **kw), None)
    assert created
    return job


def cycle(store: Store, now: float = NOW) -> list[StartRunCommand]:
    """One scheduling cycle, as the broker runs it."""
    return store.runs.apply_decisions(schedule(store.runs.load_snapshot(), now), now)


def place(jid: str, site: str, gpus: int, model: str = "A100") -> Placement:
    return Placement(jid, site, model, gpus, 1.0)


def held_gpus(store: Store) -> int:
    return sum(n for per_site in store.sites.gpus_in_use().values() for n in per_site.values())


@pytest.fixture
def fed(store: Store) -> Store:
    """A federation with one institution and one connected 8×A100 site."""
    add_institution(store)
    join_site(store, "dcc")
    return store


# -- backend sanity -----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_postgres_tables_live_in_the_test_schema(store, store_url):
    schema = store_url.rsplit("%3D", 1)[1]
    with psycopg.connect(PG_URL) as conn:
        tables = {
            r[0]
            for r in conn.execute("select table_name from information_schema.tables where table_schema = %s", (schema,))
        }
    assert {"jobs", "runs", "sites", "tokens", "institutions", "users", "log_chunks", "packages"} <= tables


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sqlite_uses_wal(store, store_url):
    with store.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    # WAL is a property of the file: a plain connection that set nothing sees it too.
    path = store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_data_survives_reopening_the_store(fed, store_url):
    submit(fed, "j-1")
    fed.close()
    again = Store(store_url)
    try:
        assert again.jobs.get("j-1").state is JobState.PENDING
        assert [s.name for s in again.sites.list()] == ["dcc"]
    finally:
        again.close()


# -- institutions and users ------------------------------------------------------------


def test_institutions_add_list_get(store):
    store.accounts.add_institution(Institution("usp", "USP", "BR", 2.0), NOW)
    store.accounts.add_institution(Institution("uchile", "U. de Chile", "CL"), NOW)
    assert store.accounts.list_institutions() == [
        Institution("uchile", "U. de Chile", "CL", 1.0),
        Institution("usp", "USP", "BR", 2.0),
    ]
    assert store.accounts.get_institution("usp").weight == 2.0
    with pytest.raises(NotFound):
        store.accounts.get_institution("nope")


def test_duplicate_institution(store):
    add_institution(store)
    with pytest.raises(AlreadyExists):
        store.accounts.add_institution(Institution("uchile", "Other", "AR"), NOW)
    assert [i.name for i in store.accounts.list_institutions()] == ["UCHILE"]


def test_adding_the_same_institution_or_project_again_is_a_no_op(store):
    """A retried admin call whose first reply was lost must not fail."""
    add_institution(store)
    add_institution(store)
    store.shares.add_project("uchile", "nlp", 2.0, NOW)
    assert store.shares.add_project("uchile", "nlp", 2.0, NOW + 1).weight == 2.0
    with pytest.raises(AlreadyExists, match="weight 2"):
        store.shares.add_project("uchile", "nlp", 3.0, NOW)
    assert [p.id for p in store.shares.list_projects()] == ["uchile/default", "uchile/nlp"]


def test_users_add_list_and_their_tokens(store):
    add_institution(store)
    store.accounts.add_user(User("bob", "uchile", Role.RESEARCHER, NOW), "h-bob")
    store.accounts.add_user(User("alice", "", Role.ADMIN, NOW), "h-alice")
    assert store.accounts.list_users() == [
        User("alice", "", Role.ADMIN, NOW),
        User("bob", "uchile", Role.RESEARCHER, NOW),
    ]
    assert store.accounts.principal_for("h-bob", NOW) == Principal("bob", Role.RESEARCHER, "uchile", "")
    assert store.accounts.principal_for("h-alice", NOW) == Principal("alice", Role.ADMIN, "", "")


def test_duplicate_user_changes_nothing(store):
    add_institution(store)
    store.accounts.add_user(User("bob", "uchile", Role.RESEARCHER, NOW), "h-bob")
    with pytest.raises(AlreadyExists):
        store.accounts.add_user(User("bob", "uchile", Role.ADMIN, NOW), "h-bob-2")
    assert store.accounts.principal_for("h-bob-2", NOW) is None  # rolled back with the user
    assert store.accounts.principal_for("h-bob", NOW).role is Role.RESEARCHER
    assert len(store.accounts.list_users()) == 1


def test_bootstrap_admin_only_once(store):
    assert store.accounts.bootstrap_admin("h-first", NOW) is True
    assert store.accounts.bootstrap_admin("h-second", NOW) is False
    assert store.accounts.principal_for("h-first", NOW) == Principal("admin", Role.ADMIN, "", "")
    assert store.accounts.principal_for("h-second", NOW) is None
    assert [u.name for u in store.accounts.list_users()] == ["admin"]


def _insert_token(store: Store, **kw) -> None:
    with store.db.tx() as s:
        s.add(TokenRow(kind="user", role=Role.RESEARCHER.value, institution="uchile", created_at=NOW, **kw))


def test_principal_for_unknown_expired_and_revoked_tokens(store):
    add_institution(store)
    assert store.accounts.principal_for("never-issued", NOW) is None
    _insert_token(store, hash="h-expires", subject="eve", expires_at=NOW + 10)
    assert store.accounts.principal_for("h-expires", NOW).name == "eve"
    assert store.accounts.principal_for("h-expires", NOW + 10) is None  # expiry is exclusive
    assert store.accounts.principal_for("h-expires", NOW + 99) is None
    _insert_token(store, hash="h-revoked", subject="mallory", revoked=True)
    assert store.accounts.principal_for("h-revoked", NOW) is None


# -- join tokens -------------------------------------------------------------------


def test_join_token_redeems_once(store):
    add_institution(store)
    store.accounts.add_join_token("h-join", "uchile", "dcc", "CL", NOW, NOW + 3600)
    assert store.accounts.principal_for("h-join", NOW) is None  # a join token is no bearer credential
    grant = store.accounts.redeem_join_token("h-join", "h-site", NOW + 1)
    assert (grant.site, grant.institution, grant.country) == ("dcc", "uchile", "CL")
    assert store.accounts.principal_for("h-site", NOW) == Principal("dcc", Role.SITE, "uchile", "dcc")
    site = store.sites.get("dcc")
    assert (site.institution, site.country, site.connected) == ("uchile", "CL", False)
    with pytest.raises(FailedPrecondition, match="already used"):
        store.accounts.redeem_join_token("h-join", "h-site-2", NOW + 2)
    assert store.accounts.principal_for("h-site-2", NOW) is None
    assert store.accounts.principal_for("h-site", NOW) is not None


def test_expired_or_unknown_join_token_fails(store):
    add_institution(store)
    store.accounts.add_join_token("h-join", "uchile", "dcc", "CL", NOW, NOW + 60)
    with pytest.raises(FailedPrecondition, match="expired"):
        store.accounts.redeem_join_token("h-join", "h-site", NOW + 60)
    with pytest.raises(FailedPrecondition):
        store.accounts.redeem_join_token("no-such-token", "h-site", NOW)
    with pytest.raises(NotFound):
        store.sites.get("dcc")
    assert store.accounts.principal_for("h-site", NOW) is None


def test_a_bearer_token_is_not_a_join_token(store):
    add_institution(store)
    store.accounts.add_user(User("bob", "uchile", Role.RESEARCHER, NOW), "h-bob")
    with pytest.raises(FailedPrecondition):
        store.accounts.redeem_join_token("h-bob", "h-site", NOW)


def test_join_token_for_unknown_institution(store):
    with pytest.raises(NotFound):
        store.accounts.add_join_token("h-join", "nope", "dcc", "CL", NOW, NOW + 60)


def test_site_name_belongs_to_one_institution(store):
    add_institution(store)
    add_institution(store, "usp", "BR")
    join_site(store, "dcc", "uchile")
    with pytest.raises(AlreadyExists):
        store.accounts.add_join_token("h-join", "usp", "dcc", "BR", NOW, NOW + 60)


def test_rejoin_revokes_the_old_site_token(store):
    add_institution(store)
    old = join_site(store, "dcc", site_token="h-old")
    new = join_site(store, "dcc", site_token="h-new")
    assert (old, new) == ("h-old", "h-new")
    assert store.accounts.principal_for("h-old", NOW) is None
    assert store.accounts.principal_for("h-new", NOW).site == "dcc"
    assert [s.name for s in store.sites.list()] == ["dcc"]


# -- jobs: submit, idempotency, list, cancel ------------------------------------------


def test_submit_and_get(store):
    job, created = store.jobs.submit(new_job("j-1", gpus=2, digest=DIGEST), None)
    assert created
    got = store.jobs.get("j-1")
    assert got == job
    assert got.spec.resources.gpus == 2 and got.spec.runtime_env.working_dir_digest == DIGEST
    with pytest.raises(NotFound):
        store.jobs.get("j-404")


def test_idempotency_key_returns_the_same_job(store):
    first, created = store.jobs.submit(new_job("j-1"), "key-1")
    assert created
    again, created = store.jobs.submit(new_job("j-2"), "key-1")
    assert not created and again.id == "j-1"
    assert store.jobs.find_by_key("ana", "key-1").id == "j-1"
    # The key is per owner, and jobs without a key never collide.
    other, created = store.jobs.submit(new_job("j-3", owner="bob"), "key-1")
    assert created and other.id == "j-3"
    assert store.jobs.submit(new_job("j-4"), None)[1] and store.jobs.submit(new_job("j-5"), None)[1]
    assert sorted(j.id for j in store.jobs.list(None, True, None)) == ["j-1", "j-3", "j-4", "j-5"]


def test_unique_constraint_on_owner_and_key(store):
    """The database itself refuses a duplicate (owner, key), whatever the code checks first."""
    store.jobs.submit(new_job("j-1"), "key-1")
    with pytest.raises(IntegrityError), store.db.tx() as s:
        s.add(
            JobRow(
                id="j-2",
                owner="ana",
                institution="uchile",
                spec_json="{}",
                state="PENDING",
                idempotency_key="key-1",
            )
        )


def test_racing_submits_with_one_key_create_one_job(store):
    for round_ in range(5):
        key = f"race-{round_}"
        barrier = threading.Barrier(2)
        results: list[tuple[Job, bool]] = []
        errors: list[BaseException] = []

        def go(jid: str) -> None:
            try:
                barrier.wait(timeout=10)
                results.append(store.jobs.submit(new_job(jid), key))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(f"j-{round_}-{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert len(results) == 2
        assert results[0][0].id == results[1][0].id
        assert sorted(created for _, created in results) == [False, True]
    assert len(store.jobs.list(None, True, None)) == 5


def test_list_filters(fed):
    add_institution(fed, "usp", "BR")
    submit(fed, "a-pending", submitted=1)
    submit(fed, "b-usp", institution="usp", submitted=2)
    submit(fed, "c-cancelled", submitted=3)
    fed.jobs.request_cancel("c-cancelled", NOW, "test")
    submit(fed, "d-leased", submitted=4, gpus=8)
    assert fed.runs.apply_decisions(Decisions(placements=(place("d-leased", "dcc", 8),)), NOW)

    def ids(jobs: Iterable[Job]) -> list[str]:
        return [j.id for j in jobs]

    assert ids(fed.jobs.list(None, True, None)) == ["d-leased", "c-cancelled", "b-usp", "a-pending"]
    assert ids(fed.jobs.list(None, False, None)) == ["d-leased", "b-usp", "a-pending"]
    assert ids(fed.jobs.list("uchile", True, None)) == ["d-leased", "c-cancelled", "a-pending"]
    assert ids(fed.jobs.list("usp", False, None)) == ["b-usp"]
    assert ids(fed.jobs.list(None, False, JobState.CANCELLED)) == ["c-cancelled"]
    assert ids(fed.jobs.list("uchile", False, JobState.LEASED)) == ["d-leased"]
    assert ids(fed.jobs.list(None, True, None, limit=2)) == ["d-leased", "c-cancelled"]


def test_cancel_pending_ends_at_once(store):
    submit(store, "j-1")
    out = store.jobs.request_cancel("j-1", NOW + 5, "cancelled by ana")
    assert out.job.state is JobState.CANCELLED
    assert (out.stop_run_id, out.stop_site) == ("", "")
    job = store.jobs.get("j-1")
    assert (job.state, job.finished_at, job.reason) == (JobState.CANCELLED, NOW + 5, "cancelled by ana")
    # Idempotent: a second cancel changes nothing.
    assert store.jobs.request_cancel("j-1", NOW + 9, "again").job == job
    with pytest.raises(NotFound):
        store.jobs.request_cancel("j-404", NOW, "x")


def test_cancel_leased_asks_the_site_to_stop(fed):
    submit(fed, "j-1", gpus=2)
    [start] = cycle(fed)
    out = fed.jobs.request_cancel("j-1", NOW + 5, "cancelled by ana")
    assert out.job.state is JobState.CANCELLING
    assert (out.stop_run_id, out.stop_site) == (start.run.id, "dcc")
    assert held_gpus(fed) == 2  # GPUs stay held until the site confirms the stop
    again = fed.jobs.request_cancel("j-1", NOW + 6, "again")
    assert again.job.state is JobState.CANCELLING and again.stop_run_id == ""


# -- snapshot and leases ------------------------------------------------------------


def test_load_snapshot(fed):
    join_site(fed, "lab", inv=inventory(("T4", 2)))
    submit(fed, "j-late", submitted=5)
    submit(fed, "j-early", submitted=1)
    snap = fed.runs.load_snapshot()
    assert [s.name for s in snap.sites] == ["dcc", "lab"]
    assert snap.sites[1].inventory == inventory(("T4", 2)) and snap.sites[1].connected
    assert [j.id for j in snap.pending] == ["j-early", "j-late"]
    assert snap.live_runs == ()


def test_apply_decisions_leases_in_one_go(fed):
    submit(fed, "j-1", gpus=2)
    submit(fed, "j-2", gpus=4, submitted=1)
    starts = cycle(fed, NOW + 1)
    assert [(c.site, c.run.job_id, c.run.gpus, c.run.epoch) for c in starts] == [
        ("dcc", "j-1", 2, 1),
        ("dcc", "j-2", 4, 1),
    ]
    for cmd in starts:
        job = fed.jobs.get(cmd.run.job_id)
        assert job.state is JobState.LEASED and job.attempts == 1
        assert (job.run_id, job.site, job.country, job.gpu_model) == (cmd.run.id, "dcc", "CL", "A100")
        assert cmd.run.id == f"minga-{job.id}-a1"
        assert cmd.spec == job.spec
    snap = fed.runs.load_snapshot()
    assert snap.pending == ()
    assert sorted((r.job_id, r.gpus, r.state) for r in snap.live_runs) == [
        ("j-1", 2, RunState.STARTING),
        ("j-2", 4, RunState.STARTING),
    ]
    assert fed.sites.gpus_in_use() == {"dcc": {"A100": 6}}


def test_apply_decisions_is_one_transaction(fed, monkeypatch):
    """If leasing the second job fails, the first lease is rolled back too."""
    import minga.scheduler.lifecycle as lifecycle  # the lease rule names each new run

    submit(fed, "j-1")
    submit(fed, "j-2", submitted=1)
    decisions = schedule(fed.runs.load_snapshot(), NOW)
    assert len(decisions.placements) == 2
    real, calls = lifecycle.run_id_for, []

    def failing(job_id: str, attempt: int) -> str:
        calls.append(job_id)
        if len(calls) == 2:
            raise RuntimeError("crash in the middle of persisting")
        return real(job_id, attempt)

    monkeypatch.setattr(lifecycle, "run_id_for", failing)
    with pytest.raises(RuntimeError):
        fed.runs.apply_decisions(decisions, NOW)
    assert {j.state for j in fed.jobs.list(None, True, None)} == {JobState.PENDING}
    assert fed.runs.load_snapshot().live_runs == ()
    monkeypatch.setattr(lifecycle, "run_id_for", real)
    assert len(fed.runs.apply_decisions(decisions, NOW)) == 2


def test_store_refuses_a_placement_beyond_capacity(fed):
    """Invariant 1 at the store: even if the policy asks, no GPU is promised twice."""
    for i in range(3):
        submit(fed, f"j-{i}", gpus=4, submitted=i)
    bad = Decisions(placements=(place("j-0", "dcc", 4), place("j-1", "dcc", 4), place("j-2", "dcc", 4)))
    starts = fed.runs.apply_decisions(bad, NOW)
    assert [c.run.job_id for c in starts] == ["j-0", "j-1"]
    assert fed.jobs.get("j-2").state is JobState.PENDING
    assert held_gpus(fed) == 8


def test_store_refuses_stale_decisions(fed):
    """Two decisions computed from the same snapshot: the second one no longer fits."""
    submit(fed, "j-a", gpus=6)
    snap = fed.runs.load_snapshot()
    first = schedule(snap, NOW)
    submit(fed, "j-b", gpus=6, submitted=1)
    second = schedule(_only(fed, "j-b"), NOW)
    assert [p.job_id for p in first.placements] == ["j-a"]
    assert [p.job_id for p in second.placements] == ["j-b"]
    assert len(fed.runs.apply_decisions(first, NOW)) == 1
    assert fed.runs.apply_decisions(second, NOW) == []
    assert fed.jobs.get("j-b").state is JobState.PENDING
    assert held_gpus(fed) == 6
    # Applying the first decisions again leases nothing: the job is no longer pending.
    assert fed.runs.apply_decisions(first, NOW) == []
    assert fed.jobs.get("j-a").attempts == 1


def _only(store: Store, jid: str) -> Snapshot:
    """The current snapshot with only `jid` pending: what a cycle that raced the first would see."""
    snap = store.runs.load_snapshot()
    return Snapshot(sites=snap.sites, live_runs=snap.live_runs, pending=tuple(j for j in snap.pending if j.id == jid))


def test_store_refuses_a_model_the_site_lacks_and_unknown_sites(fed):
    submit(fed, "j-1", gpus=1)
    submit(fed, "j-2", gpus=1)
    bad = Decisions(placements=(place("j-1", "dcc", 1, model="H100"), place("j-2", "nowhere", 1)))
    assert fed.runs.apply_decisions(bad, NOW) == []
    assert {j.state for j in fed.jobs.list(None, True, None)} == {JobState.PENDING}


def test_store_counts_live_runs_from_earlier_cycles(fed):
    submit(fed, "j-1", gpus=6)
    assert len(cycle(fed)) == 1
    submit(fed, "j-2", gpus=4, submitted=1)
    assert fed.runs.apply_decisions(Decisions(placements=(place("j-2", "dcc", 4),)), NOW) == []
    assert fed.runs.apply_decisions(Decisions(placements=(place("j-2", "dcc", 2),)), NOW) != []
    assert held_gpus(fed) == 8


def test_waiting_reasons_are_saved(fed):
    submit(fed, "j-1", gpus=64)
    fed.runs.apply_decisions(Decisions(waiting=(Waiting("j-1", "capacity: too big", never_fits=True),)), NOW)
    assert fed.jobs.get("j-1").reason == "capacity: too big"
    cycle(fed)
    assert fed.jobs.get("j-1").reason.startswith("capacity:")


# -- reports and fencing --------------------------------------------------------------


def _leased(store: Store, jid: str = "j-1", gpus: int = 2) -> StartRunCommand:
    submit(store, jid, gpus=gpus)
    [start] = [c for c in cycle(store) if c.run.job_id == jid]
    return start


def test_reports_drive_the_job_to_success(fed):
    run_id = _leased(fed).run.id
    assert fed.runs.apply_report("dcc", RunReport(run_id, RunState.STARTING), NOW + 1) == []
    assert fed.jobs.get("j-1").state is JobState.LEASED
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.RUNNING), NOW + 2)
    job = fed.jobs.get("j-1")
    assert (job.state, job.started_at) == (JobState.RUNNING, NOW + 2)
    assert fed.runs.apply_report("dcc", RunReport(run_id, RunState.SUCCEEDED), NOW + 3) == []
    job = fed.jobs.get("j-1")
    assert (job.state, job.finished_at) == (JobState.SUCCEEDED, NOW + 3)
    assert held_gpus(fed) == 0  # a finished run frees its GPUs


def test_failed_report_keeps_the_message(fed):
    run_id = _leased(fed).run.id
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.FAILED, "exit code 3"), NOW + 1)
    job = fed.jobs.get("j-1")
    assert (job.state, job.reason) == (JobState.FAILED, "exit code 3")


def test_report_from_another_site_is_ignored(fed):
    join_site(fed, "lab")
    run_id = _leased(fed).run.id
    assert fed.jobs.get("j-1").site == "dcc"
    for state in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED):
        assert fed.runs.apply_report("lab", RunReport(run_id, state), NOW + 1) == []
    # A live-looking report from the wrong site is told to stop there, on that site only.
    assert fed.runs.apply_report("lab", RunReport(run_id, RunState.RUNNING), NOW + 1) == [
        StopRunCommand("lab", run_id, "unknown run")
    ]
    job = fed.jobs.get("j-1")
    assert job.state is JobState.LEASED and job.finished_at == 0.0
    assert held_gpus(fed) == 2


def test_unknown_run_is_told_to_stop(fed):
    assert fed.runs.apply_report("dcc", RunReport("minga-ghost-a1", RunState.RUNNING), NOW) == [
        StopRunCommand("dcc", "minga-ghost-a1", "unknown run")
    ]
    assert fed.runs.apply_report("dcc", RunReport("minga-ghost-a1", RunState.FAILED), NOW) == []


def _requeue(store: Store, jid: str) -> None:
    """What losing a lease does (LEASED → PENDING, old run no longer live), written directly."""
    with store.db.tx() as s:
        job = s.get(JobRow, jid)
        run = s.get(RunRow, job.run_id)
        job.state = JobState.PENDING.value
        run.live = False
        s.add(job)
        s.add(run)


def test_stale_run_is_fenced(fed):
    first = _leased(fed).run
    _requeue(fed, "j-1")
    [second] = cycle(fed, NOW + 10)
    assert (second.run.epoch, second.run.id) == (2, "minga-j-1-a2")
    # The old run shows up again: it is told to stop and touches nothing.
    cmds = fed.runs.apply_report("dcc", RunReport(first.id, RunState.RUNNING), NOW + 11)
    assert cmds == [StopRunCommand("dcc", first.id, "stale run: fenced by a newer epoch")]
    assert fed.runs.apply_report("dcc", RunReport(first.id, RunState.SUCCEEDED), NOW + 12) == []
    job = fed.jobs.get("j-1")
    assert (job.state, job.run_id, job.attempts) == (JobState.LEASED, second.run.id, 2)
    # The current run still drives the job.
    fed.runs.apply_report("dcc", RunReport(second.run.id, RunState.RUNNING), NOW + 13)
    assert fed.jobs.get("j-1").state is JobState.RUNNING


def test_a_terminal_job_gets_no_second_terminal_state(fed):
    run_id = _leased(fed).run.id
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.SUCCEEDED), NOW + 1)
    for state in (RunState.FAILED, RunState.STOPPED, RunState.SUCCEEDED):
        assert fed.runs.apply_report("dcc", RunReport(run_id, state), NOW + 2) == []
    assert fed.runs.apply_report("dcc", RunReport(run_id, RunState.RUNNING), NOW + 3) == [
        StopRunCommand("dcc", run_id, "stale run: fenced by a newer epoch")
    ]
    job = fed.jobs.get("j-1")
    assert (job.state, job.finished_at) == (JobState.SUCCEEDED, NOW + 1)
    assert fed.jobs.request_cancel("j-1", NOW + 4, "late").job.state is JobState.SUCCEEDED


def test_cancel_flow_through_reports(fed):
    run_id = _leased(fed).run.id
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.RUNNING), NOW + 1)
    fed.jobs.request_cancel("j-1", NOW + 2, "cancelled by ana")
    # The run still says RUNNING: the broker repeats the stop.
    assert fed.runs.apply_report("dcc", RunReport(run_id, RunState.RUNNING), NOW + 3) == [
        StopRunCommand("dcc", run_id, "job cancelled")
    ]
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.STOPPED), NOW + 4)
    job = fed.jobs.get("j-1")
    assert (job.state, job.finished_at, job.reason) == (JobState.CANCELLED, NOW + 4, "cancelled by ana")
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.SUCCEEDED), NOW + 5)
    assert fed.jobs.get("j-1").state is JobState.CANCELLED
    assert held_gpus(fed) == 0


def test_cancelled_run_the_site_never_saw(fed):
    run_id = _leased(fed).run.id
    fed.jobs.request_cancel("j-1", NOW + 1, "cancelled by ana")
    fed.runs.apply_report("dcc", RunReport(run_id, RunState.UNKNOWN), NOW + 2)
    assert fed.jobs.get("j-1").state is JobState.CANCELLED
    assert held_gpus(fed) == 0


def test_a_run_that_vanishes_from_ray_is_requeued_but_not_at_hello(fed):
    """In a session, UNKNOWN means Ray lost a run it had: an infrastructure failure.
    In a Hello it means the start never arrived, and reconcile resends it instead."""
    run_id = _leased(fed).run.id
    assert fed.runs.reconcile_site("dcc", [RunReport(run_id, RunState.UNKNOWN)], NOW + 1) == [
        StartRunCommand(
            "dcc", fed.runs.load_snapshot(NOW + 1).live_runs[0], fed.jobs.get("j-1").spec, notice_seconds=60
        )
    ]
    assert fed.jobs.get("j-1").state is JobState.LEASED
    assert fed.runs.apply_report("dcc", RunReport(run_id, RunState.UNKNOWN), NOW + 2) == []
    job = fed.jobs.get("j-1")
    assert job.state is JobState.PENDING and "vanished" in job.reason and "infrastructure requeue 1 of 20" in job.reason


# -- reconcile ----------------------------------------------------------------------


def test_reconcile_resends_unreported_leases_and_stops_unknown_runs(fed):
    submit(fed, "j-1", gpus=2)
    submit(fed, "j-2", gpus=2, submitted=1)
    submit(fed, "j-3", gpus=2, submitted=2)
    starts = {c.run.job_id: c for c in cycle(fed)}
    fed.jobs.request_cancel("j-3", NOW + 1, "cancelled by ana")
    reports = [
        RunReport(starts["j-1"].run.id, RunState.RUNNING),
        RunReport("minga-ghost-a1", RunState.RUNNING),
        RunReport("minga-done-a1", RunState.SUCCEEDED),
    ]
    cmds = fed.runs.reconcile_site("dcc", reports, NOW + 2)
    assert StopRunCommand("dcc", "minga-ghost-a1", "unknown run") in cmds
    resent = [c for c in cmds if isinstance(c, StartRunCommand)]
    assert resent == [starts["j-2"]]  # same run id and epoch: safe to resend
    assert len(cmds) == 2
    assert fed.jobs.get("j-1").state is JobState.RUNNING
    assert fed.jobs.get("j-2").state is JobState.LEASED
    assert fed.jobs.get("j-3").state is JobState.CANCELLED  # never reached Ray: nothing to stop
    assert held_gpus(fed) == 4


def test_reconcile_resends_a_lease_the_site_says_it_does_not_know(fed):
    start = _leased(fed)
    cmds = fed.runs.reconcile_site("dcc", [RunReport(start.run.id, RunState.UNKNOWN)], NOW + 1)
    assert cmds == [start]
    assert fed.jobs.get("j-1").state is JobState.LEASED


def test_reconcile_ends_a_cancelled_run_the_site_does_not_know(fed):
    start = _leased(fed)
    fed.jobs.request_cancel("j-1", NOW + 1, "cancelled by ana")
    assert fed.runs.reconcile_site("dcc", [RunReport(start.run.id, RunState.UNKNOWN)], NOW + 2) == []
    assert fed.jobs.get("j-1").state is JobState.CANCELLED
    assert held_gpus(fed) == 0


def test_reconcile_only_touches_its_own_site(fed):
    join_site(fed, "lab", inv=inventory(("T4", 8)))
    on_dcc = _leased(fed, "j-1")
    submit(fed, "j-2", models=("T4",))
    [on_lab] = cycle(fed)
    assert on_lab.site == "lab"
    assert fed.runs.reconcile_site("lab", [], NOW + 1) == [on_lab]
    # dcc's run, reported by lab, is not lab's to touch.
    cmds = fed.runs.reconcile_site(
        "lab", [RunReport(on_dcc.run.id, RunState.FAILED), RunReport(on_lab.run.id, RunState.RUNNING)], NOW + 2
    )
    assert cmds == []
    assert fed.jobs.get("j-1").state is JobState.LEASED
    assert fed.jobs.get("j-2").state is JobState.RUNNING


# -- logs and packages --------------------------------------------------------------


def _log(store: Store, run_id: str, offset: int = 0) -> bytes:
    chunks = store.blobs.read_log(run_id, offset)
    pos = offset
    for chunk_offset, data in chunks:
        assert chunk_offset == pos, chunks  # contiguous, no gaps, no repeats
        pos += len(data)
    return b"".join(data for _, data in chunks)


def test_log_append_and_read(fed):
    run_id = _leased(fed).run.id
    assert fed.blobs.read_log(run_id, 0) == []
    assert fed.blobs.append_log("dcc", run_id, 0, b"hello ")
    assert fed.blobs.append_log("dcc", run_id, 6, b"world\n")
    assert _log(fed, run_id) == b"hello world\n"
    assert _log(fed, run_id, 4) == b"o world\n"
    assert _log(fed, run_id, 6) == b"world\n"
    assert _log(fed, run_id, 12) == b""
    assert _log(fed, run_id, 100) == b""


def test_log_resend_and_overlap_are_idempotent(fed):
    run_id = _leased(fed).run.id
    fed.blobs.append_log("dcc", run_id, 0, b"hello ")
    fed.blobs.append_log("dcc", run_id, 0, b"hello ")  # resent as is
    fed.blobs.append_log("dcc", run_id, 2, b"llo")  # inside what we have
    fed.blobs.append_log("dcc", run_id, 3, b"lo world")  # overlaps the end
    fed.blobs.append_log("dcc", run_id, 6, b"world")  # resent after a reconnect
    fed.blobs.append_log("dcc", run_id, 11, b"\x00\xff\n")  # binary bytes pass through
    assert _log(fed, run_id) == b"hello world\x00\xff\n"


def test_log_from_the_wrong_site_or_for_an_unknown_run(fed):
    join_site(fed, "lab")
    run_id = _leased(fed).run.id
    assert fed.blobs.append_log("lab", run_id, 0, b"spoofed") is False
    assert fed.blobs.append_log("dcc", "minga-ghost-a1", 0, b"x") is False
    assert fed.blobs.read_log(run_id, 0) == []
    assert fed.blobs.read_log("minga-ghost-a1", 0) == []


def test_packages(store):
    data = bytes(range(256)) * 64
    assert not store.blobs.has_package(DIGEST)
    with pytest.raises(NotFound):
        store.blobs.get_package(DIGEST)
    store.blobs.put_package(DIGEST, data, NOW)
    store.blobs.put_package(DIGEST, data, NOW + 1)  # a second upload is harmless
    assert store.blobs.has_package(DIGEST)
    assert store.blobs.get_package(DIGEST) == data


def test_site_needs_package_only_for_its_leased_runs(fed):
    join_site(fed, "lab")
    submit(fed, "j-1", digest=DIGEST)
    [start] = cycle(fed)
    other = "lab" if start.site == "dcc" else "dcc"
    assert fed.runs.site_needs_package(start.site, DIGEST)
    assert not fed.runs.site_needs_package(other, DIGEST)
    assert not fed.runs.site_needs_package(start.site, "sha256:" + "cd" * 32)
    fed.runs.apply_report(start.site, RunReport(start.run.id, RunState.SUCCEEDED), NOW + 1)
    assert not fed.runs.site_needs_package(start.site, DIGEST)


# -- sites ---------------------------------------------------------------------------


def test_site_connection_state_and_cordon(fed):
    site = fed.sites.get("dcc")
    assert site.connected and site.state is SiteState.READY and site.inventory == inventory(("A100", 8))
    fed.sites.update_inventory("dcc", inventory(("A100", 4)), NOW + 1)
    assert fed.sites.get("dcc").inventory.total_gpus == 4
    assert fed.sites.set_admin_state("dcc", SiteState.CORDONED).state is SiteState.CORDONED
    submit(fed, "j-1")
    assert cycle(fed) == []  # a cordoned site gets nothing
    fed.sites.disconnected("dcc", NOW + 2)
    assert not fed.sites.get("dcc").connected and fed.sites.get("dcc").last_seen == NOW + 2
    fed.runs.site_lost("dcc", "no report for 30 s", NOW + 2)
    lost = fed.sites.get("dcc")
    assert lost.state is SiteState.LOST and lost.state_reason == "no report for 30 s"  # health wins
    fed.sites.connected("dcc", inventory(("A100", 4)), NOW + 3)
    assert fed.sites.get("dcc").state is SiteState.CORDONED  # back, and the cordon still stands
    fed.sites.set_admin_state("dcc", SiteState.DRAINING)
    assert fed.sites.get("dcc").state is SiteState.DRAINING and cycle(fed) == []
    fed.sites.set_admin_state("dcc", None)
    assert fed.sites.get("dcc").state is SiteState.READY and len(cycle(fed)) == 1
    fed.sites.mark_all_disconnected()
    assert not any(s.connected for s in fed.sites.list())
    with pytest.raises(NotFound):
        fed.sites.set_admin_state("nowhere", None)


def test_user_usage_ledger_round_trips_on_both_stores(store):
    """The per-user ledger (column `user`, a reserved word in PostgreSQL) is written by a
    charging step, updated by the next one, and read back into the snapshot."""
    from minga.scheduler.accounting import ChargeBatch, Ledger

    add_institution(store)
    leaf = "uchile/default/ana"
    store.runs.charge_batch(lambda: ChargeBatch(now=NOW, user_usage={leaf: Ledger(3600.0, NOW)}))
    store.runs.charge_batch(lambda: ChargeBatch(now=NOW + 1, user_usage={leaf: Ledger(7200.0, NOW + 1)}))
    usage = dict(store.runs.load_snapshot(NOW + 1).user_usage)
    assert usage[leaf] == pytest.approx(7200.0)


def test_carbon_figures_round_trip_on_both_stores(store):
    """Admin-set grid intensities and GPU watts are stored and overlay the defaults; a figure
    for an unknown site is refused and stores nothing (the whole set is one transaction)."""
    from minga.common.domain import NotFound

    store.carbon.set([("country", "CL", 120.0), ("gpu", "A100", 250.0)], "admin", NOW)
    shown = store.carbon.show()
    assert (shown.countries["CL"].value, shown.countries["CL"].source) == (120.0, "admin")
    assert shown.countries["BR"].source != "admin"  # a default stays a default
    assert shown.gpus["A100"].value == 250.0
    with pytest.raises(NotFound):
        store.carbon.set([("country", "AR", 1.0), ("site", "nowhere", 10.0)], "admin", NOW)
    assert store.carbon.show().countries["AR"].source != "admin"
