"""The share history (`ReportsRepo.share_history`, `service.shares.share_history`): each
country's mean GPUs held and the federation's mean GPUs up, per time bucket, exact from
the runs and the uptime segments of a real SQLite store."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlmodel import delete

from minga.common.domain import InvalidArgument
from minga.common.usage import ShareHistory
from minga.scheduler.service.shares import share_history
from minga.scheduler.store import Store
from minga.scheduler.store.models import InstitutionRow, RunRow, SiteUptimeRow
from tests.fixtures_broker import core_over

NOW = 1_700_000_000.0
WINDOW = 2400.0  # four buckets of 600 s in the examples
COUNTRY = {"uchile": "CL", "unam": "MX", "uba": "AR"}
RUN_IDS = itertools.count()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'broker.db'}")
    with s.db.tx() as tx:
        tx.add_all([InstitutionRow(slug=slug, name=slug.upper(), country=c) for slug, c in COUNTRY.items()])
    yield s
    s.close()


def add_run(store: Store, institution: str, gpus: int, running_since: float, ended_at: float = 0.0) -> None:
    """A run holding `gpus` from `running_since` to `ended_at` (0: still running)."""
    with store.db.tx() as s:
        run_id = f"run-{next(RUN_IDS)}"
        s.add(
            RunRow(
                id=run_id,
                job_id=run_id,
                site="dcc",
                epoch=1,
                gpu_model="A100",
                gpus=gpus,
                state="RUNNING" if not ended_at else "SUCCEEDED",
                live=not ended_at,
                institution=institution,
                project=f"{institution}/default",
                running_since=running_since,
                ended_at=ended_at,
            )
        )


def add_segment(store: Store, site: str, gpus: int, start: float, end: float) -> None:
    with store.db.tx() as s:
        s.add(
            SiteUptimeRow(
                site=site, institution="uchile", country="CL", start=start, end=end, gpus=gpus, normalized_gpus=gpus
            )
        )


@pytest.fixture
def history(store: Store) -> ShareHistory:
    """Four buckets of 600 s from NOW: runs in Chile and Mexico across bucket edges."""
    add_run(store, "uchile", 2, NOW + 300, NOW + 900)  # 300 s in bucket 0, 300 s in bucket 1
    add_run(store, "uchile", 1, NOW - 500, NOW + 600)  # began before the window: bucket 0 whole
    add_run(store, "unam", 4, NOW + 1050)  # still running: 150 s of bucket 1, then to the end
    add_run(store, "uba", 8, NOW - 900, NOW - 10)  # ended before the window
    add_run(store, "uba", 8, NOW + WINDOW, NOW + WINDOW + 60)  # began at its end
    add_run(store, "uba", 8, 0.0, NOW + 100)  # never ran
    add_segment(store, "dcc", 8, NOW - 100, NOW + 1200)  # buckets 0 and 1
    add_segment(store, "dcc", 4, NOW + 1200, NOW + 1500)  # half of bucket 2
    add_segment(store, "lab", 2, NOW + 1800, NOW + 5000)  # bucket 3, and past the window
    return store.reports.share_history(NOW, NOW + WINDOW, 4)


def test_each_country_holds_its_mean_gpus_per_bucket(history):
    assert (history.since, history.until, history.bucket_seconds, history.buckets) == (NOW, NOW + WINDOW, 600.0, 4)
    assert history.countries == ("CL", "MX")  # Argentina held nothing in the window
    assert history.held["CL"] == pytest.approx((2.0, 1.0, 0.0, 0.0))
    assert history.held["MX"] == pytest.approx((0.0, 1.0, 4.0, 4.0))  # a running run counts up to `until`
    assert history.starts == (NOW, NOW + 600, NOW + 1200, NOW + 1800)
    assert history.midpoints == (NOW + 300, NOW + 900, NOW + 1500, NOW + 2100)


def test_capacity_comes_from_the_uptime_segments(history):
    assert history.capacity == pytest.approx((8.0, 8.0, 2.0, 2.0))
    assert history.utilization() == pytest.approx((2 / 8, 2 / 8, 4 / 2, 4 / 2))  # not clamped


def test_shares_sum_to_one_where_anything_runs(history):
    assert history.share("CL") == pytest.approx((1.0, 0.5, 0.0, 0.0))
    assert history.share("MX") == pytest.approx((0.0, 0.5, 1.0, 1.0))
    assert history.share("AR") == (0.0, 0.0, 0.0, 0.0)
    for i in range(history.buckets):
        assert sum(history.share(c)[i] for c in history.countries) == pytest.approx(1.0)


def test_two_queries_read_it_however_many_runs_and_buckets(store):
    for i in range(30):
        add_run(store, "uchile", 1, NOW + i * 10, NOW + i * 10 + 500)
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(store.db.read_engine, "before_cursor_execute", seen)
    try:
        store.reports.share_history(NOW, NOW + WINDOW, 200)
    finally:
        event.remove(store.db.read_engine, "before_cursor_execute", seen)
    assert [sql.split()[0] for sql in statements if not sql.startswith(("BEGIN", "PRAGMA"))] == ["SELECT", "SELECT"]


def test_an_empty_window_holds_nothing(store):
    add_run(store, "uchile", 2, NOW + 300, NOW + 900)
    empty = store.reports.share_history(NOW + 1000, NOW + 2000, 5)
    assert (empty.countries, empty.capacity, empty.total_held()) == ((), (0.0,) * 5, (0.0,) * 5)
    assert empty.share("CL") == (0.0,) * 5 and empty.utilization() == (0.0,) * 5


def test_a_run_of_an_unknown_institution_counts_under_no_country(store):
    add_run(store, "gone", 3, NOW, NOW + 600)
    assert store.reports.share_history(NOW, NOW + 600, 1).held == {"": (3.0,)}


def test_the_history_is_read_only(history):
    with pytest.raises(TypeError):
        history.held["CL"] = (0.0,) * 4  # type: ignore[index]


def test_the_service_reads_the_last_day_in_48_buckets_by_default(store):
    add_run(store, "uchile", 2, NOW - 3600)
    got = share_history(core_over(store, NOW))
    assert (got.since, got.until, got.buckets, got.bucket_seconds) == (NOW - 86400, NOW, 48, 1800.0)
    assert got.held["CL"][-2:] == pytest.approx((2.0, 2.0)) and sum(got.held["CL"]) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("since", "buckets", "says"),
    [
        (0, 48, "since must be a positive duration"),
        (-60, 48, "since must be a positive duration"),
        (math.nan, 48, "since must be a positive duration"),
        (math.inf, 48, "since must be a positive duration"),
        (31 * 86400 + 1, 48, "since must be at most 31 days"),
        (86400, 0, "buckets must be a whole number from 1 to 500"),
        (86400, 501, "buckets must be a whole number from 1 to 500"),
        (86400, 2.5, "buckets must be a whole number from 1 to 500"),
        (86400, True, "buckets must be a whole number from 1 to 500"),
    ],
)
def test_the_service_refuses_bad_arguments(store, since, buckets, says):
    with pytest.raises(InvalidArgument, match=says):
        share_history(core_over(store, NOW), since, buckets)


def test_the_service_accepts_its_bounds(store):
    core = core_over(store, NOW)
    assert share_history(core, 31 * 86400, 500).buckets == 500
    assert share_history(core, 1, 1).bucket_seconds == 1.0


def overlap(start: float, end: float, lo: float, hi: float) -> float:
    return max(0.0, min(end, hi) - max(start, lo))


RUNS = st.lists(
    st.tuples(
        st.sampled_from(sorted(COUNTRY)),
        st.integers(1, 8),  # GPUs
        st.floats(-5000, 5000, allow_nan=False),  # start, from the window's start
        st.one_of(st.none(), st.floats(0.001, 8000, allow_nan=False)),  # duration; None: still running
    ),
    max_size=12,
)
SEGMENTS = st.lists(
    st.tuples(st.integers(1, 16), st.floats(-5000, 5000, allow_nan=False), st.floats(0.001, 8000, allow_nan=False)),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=RUNS,
    segments=SEGMENTS,
    buckets=st.integers(1, 50),
    since=st.floats(NOW - 1000, NOW + 1000),
    window=st.floats(1, 7000),
)
def test_buckets_add_up_to_the_exact_overlaps(store, runs, segments, buckets, since, window):
    """Whatever the runs and buckets, held x bucket seconds summed over the buckets is each
    country's exact GPU-seconds in the window; the same for the capacity."""
    with store.db.tx() as s:
        s.exec(delete(RunRow))
        s.exec(delete(SiteUptimeRow))
    until = since + window
    expected: dict[str, float] = {}
    for institution, gpus, start, duration in runs:
        ended_at = 0.0 if duration is None else NOW + start + duration
        add_run(store, institution, gpus, NOW + start, ended_at)
        seconds = overlap(NOW + start, ended_at or until, since, until)
        expected[COUNTRY[institution]] = expected.get(COUNTRY[institution], 0.0) + gpus * seconds
    for i, (gpus, start, duration) in enumerate(segments):
        add_segment(store, f"s{i}", gpus, NOW + start, NOW + start + duration)
    got = store.reports.share_history(since, until, buckets)

    assert got.buckets == buckets and got.bucket_seconds * buckets == pytest.approx(window)
    assert set(got.countries) == {c for c, gpu_seconds in expected.items() if gpu_seconds > 0}
    for country in got.countries:
        assert sum(got.held[country]) * got.bucket_seconds == pytest.approx(expected[country], rel=1e-9, abs=1e-6)
    capacity = sum(g * overlap(NOW + st_, NOW + st_ + d, since, until) for g, st_, d in segments)
    assert sum(got.capacity) * got.bucket_seconds == pytest.approx(capacity, rel=1e-9, abs=1e-6)
    for i, total in enumerate(got.total_held()):
        shares = sum(got.share(c)[i] for c in got.countries)
        assert shares == pytest.approx(1.0 if total > 0 else 0.0)
