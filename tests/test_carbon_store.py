"""The energy metrics' incremental read (issue 16, docs/carbon.md), SQLite and PostgreSQL:
the first read is the full sums, each later one reads only the rows written since the last
(a watermark on `run_energy.seq`), and no row is ever counted twice or skipped, even one
that commits after a row written later (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from minga.common.domain import RunState
from minga.common.site_messages import RunReport
from minga.scheduler.metrics.energy import RunningTotals
from minga.scheduler.store import Store
from minga.scheduler.store.accounts import Institution
from minga.scheduler.store.carbon import ENERGY_LOCK_KEY, EnergySince, energy_lock
from minga.scheduler.store.models import RunEnergyRow
from tests.eventually import eventually
from tests.test_store import NOW, cycle, inventory, join_site, store, store_url, submit  # noqa: F401 - fixtures

HOUR = 3600.0


@pytest.fixture
def fed(store: Store) -> Store:
    """Two institutions, one 8xA100 site each, in Chile and Brazil."""
    for slug, country, site in (("uchile", "CL", "dcc"), ("usp", "BR", "lab")):
        store.accounts.add_institution(Institution(slug, slug.upper(), country), NOW)
        join_site(store, site, institution=slug, country=country, inv=inventory(("A100", 8)))
    return store


def end_a_run(store: Store, jid: str, institution: str, gpus: int, hours: float) -> RunEnergyRow:
    """Submit, place, run for `hours` and end a job SUCCEEDED; the run's energy row."""
    submit(store, jid, gpus=gpus, institution=institution, owner=f"ana-{institution}")
    [start] = [c for c in cycle(store) if c.run.job_id == jid]
    site, run_id = start.run.site, start.run.id
    store.runs.apply_report(site, RunReport(run_id, RunState.RUNNING), NOW + 1)
    store.runs.apply_report(site, RunReport(run_id, RunState.SUCCEEDED), NOW + 1 + hours * HOUR)
    row = store.carbon.run_energy(run_id)
    assert row is not None and row.kwh > 0
    return row


def full_sums(rows: list[RunEnergyRow]) -> dict[str, tuple[float, float]]:
    sums = {"CL": (0.0, 0.0), "BR": (0.0, 0.0)}
    for r in rows:
        kwh, kg = sums[r.country]
        sums[r.country] = (kwh + r.kwh, kg + r.kgco2e)
    return sums


def approx(totals: dict[str, tuple[float, float]]) -> dict[str, object]:
    return {c: pytest.approx(v) for c, v in totals.items()}


def test_the_totals_are_read_incrementally_and_each_row_once(fed):
    totals = RunningTotals(fed.carbon.energy_since)
    assert totals.read() == {"CL": (0.0, 0.0), "BR": (0.0, 0.0)}  # the series exist from the start

    rows = [
        end_a_run(fed, "j-1", "uchile", 2, 3.0),
        end_a_run(fed, "j-2", "usp", 1, 5.0),
        end_a_run(fed, "j-3", "uchile", 4, 1.5),
    ]
    first = totals.read()
    assert first == approx(full_sums(rows))  # (a) the totals equal the full sums
    assert first == fed.carbon.energy_since(0).by_country  # the full sums, as one query would give them

    before = fed.carbon.energy_since(0).upto
    rows.append(end_a_run(fed, "j-4", "usp", 3, 2.0))
    new = fed.carbon.energy_since(before)  # (b) past the watermark: the one new row alone
    assert new.by_country == {"CL": (0.0, 0.0), "BR": (rows[-1].kwh, rows[-1].kgco2e)}
    assert new.upto > before
    assert fed.carbon.energy_since(new.upto) == EnergySince({"CL": (0.0, 0.0), "BR": (0.0, 0.0)}, new.upto)

    assert totals.read() == approx(full_sums(rows))
    assert totals.read() == approx(full_sums(rows))  # (c) reading again adds nothing
    assert RunningTotals(fed.carbon.energy_since).read() == approx(full_sums(rows))  # a new term: the full sums


def test_a_run_charged_twice_is_stored_and_counted_once(fed):
    row = end_a_run(fed, "j-1", "uchile", 2, 3.0)
    totals = RunningTotals(fed.carbon.energy_since)
    assert totals.read()["CL"] == (row.kwh, row.kgco2e)
    fed.runs.apply_report("dcc", RunReport(row.run_id, RunState.SUCCEEDED), NOW + 10 * HOUR)  # a repeated report
    assert totals.read()["CL"] == (row.kwh, row.kgco2e)
    assert fed.carbon.energy_since(0).by_country["CL"] == (row.kwh, row.kgco2e)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_row_committed_after_a_later_one_is_not_skipped(fed):
    """PostgreSQL draws a seq at insert: a later seq can commit first. The read waits for
    the writer still open, so the watermark never steps past its row."""
    totals = RunningTotals(fed.carbon.energy_since)
    totals.read()
    got: list[dict[str, tuple[float, float]]] = []
    with fed.db.tx() as slow:
        energy_lock(slow, exclusive=False)
        slow.add(RunEnergyRow(run_id="r-slow", country="CL", kwh=1.0, kgco2e=0.25))
        slow.flush()  # its seq is drawn now
        with fed.db.tx() as quick:
            energy_lock(quick, exclusive=False)
            quick.add(RunEnergyRow(run_id="r-quick", country="CL", kwh=2.0, kgco2e=0.5))
        reader = threading.Thread(target=lambda: got.append(totals.read()))
        reader.start()
        eventually(lambda: _waiting_for_the_energy_lock(fed) == 1)
        assert got == []
    reader.join()
    assert got[0]["CL"] == (3.0, 0.75)
    assert totals.read()["CL"] == (3.0, 0.75)


def _waiting_for_the_energy_lock(store: Store) -> int:
    with store.db.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = :key "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"key": ENERGY_LOCK_KEY},
            ).scalar_one()
        )
