"""Lending policies in the store (SQLite and PostgreSQL): set, replace, clear, the snapshot
carries them, and a cycle through the store enforces them and preempts on a closed window."""

from __future__ import annotations

from dataclasses import replace

import pytest

from minga.common.domain import JobState, NotFound
from minga.common.lending import LendingPolicy, check_policy, parse_window
from minga.common.site_messages import StopRunCommand
from minga.scheduler.store import Store
from tests.test_lending import WEDNESDAY_10_BELEM, WEDNESDAY_22_BELEM
from tests.test_store import add_institution, cycle, join_site, store, store_url, submit  # noqa: F401 - fixtures

POLICY = check_policy(
    LendingPolicy(
        allow_countries=("BR",),
        deny_institutions=("unam",),
        max_lent_gpus=4,
        guest_max_walltime_seconds=14400,
        timezone="America/Belem",
        closed_windows=(parse_window("Mon-Fri 08:00-20:00"),),
        lend_windows=(parse_window("daily 00:00-24:00"),),
        env_allow=("HF_HOME",),
        pip_allow=("torch",),
    )
)


@pytest.fixture
def fed(store: Store) -> Store:
    add_institution(store, "uchile", "CL")
    add_institution(store, "usp", "BR")
    join_site(store, "dcc", "uchile")
    return store


def test_set_get_replace_clear(fed):
    assert fed.lending.get("dcc") == ("uchile", None)
    assert fed.lending.set("dcc", POLICY, 1.0, "root") == "uchile"
    assert fed.lending.get("dcc") == ("uchile", POLICY)  # every field round-trips
    smaller = LendingPolicy(max_lent_gpus=0)
    fed.lending.set("dcc", smaller, 2.0, "root")
    assert fed.lending.get("dcc")[1] == smaller and fed.lending.all() == (("dcc", smaller),)
    fed.lending.set("dcc", None, 3.0, "root")
    assert fed.lending.get("dcc") == ("uchile", None) and fed.lending.all() == ()
    fed.lending.set("dcc", None, 4.0, "root")  # clearing twice is fine


def test_unknown_site_is_refused(fed):
    with pytest.raises(NotFound):
        fed.lending.set("nope", POLICY, 1.0, "root")
    with pytest.raises(NotFound):
        fed.lending.get("nope")


def test_snapshot_carries_policies_and_the_cycle_obeys_them(fed):
    fed.lending.set(
        "dcc",
        replace(POLICY, allow_countries=(), env_allow=(), pip_allow=(), guest_max_walltime_seconds=0),
        1.0,
        "root",
    )
    assert fed.runs.load_snapshot().lending == (("dcc", fed.lending.get("dcc")[1]),)
    submit(fed, "guest", gpus=2, institution="usp")
    submit(fed, "own", gpus=2, institution="uchile", submitted=1)
    assert {c.run.job_id for c in cycle(fed, WEDNESDAY_10_BELEM)} == {"own"}
    guest = fed.jobs.get("guest")
    assert guest.state is JobState.PENDING
    assert "never during Mon-Fri 08:00-20:00 America/Belem" in guest.reason


def test_a_closing_window_preempts_guests_without_counting_an_attempt(fed):
    fed.lending.set(
        "dcc",
        check_policy(LendingPolicy(timezone="America/Belem", closed_windows=(parse_window("Mon-Fri 08:00-20:00"),))),
        1.0,
        "root",
    )
    submit(fed, "guest", gpus=2, institution="usp")
    started = cycle(fed, WEDNESDAY_22_BELEM)
    assert [c.run.job_id for c in started] == ["guest"]
    commands = cycle(fed, WEDNESDAY_10_BELEM + 86400)  # Thursday morning
    stops = [c for c in commands if isinstance(c, StopRunCommand)]
    assert [c.run_id for c in stops] == [started[0].run.id]
    job = fed.jobs.get("guest")
    assert job.state is JobState.PENDING and job.failures == 0
    assert job.reason.startswith("preempted: lending: site dcc lends only outside")
