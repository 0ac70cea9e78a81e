"""Site owners' lending policies in the pure policy: borrowers, GPUs lent, guest walltime,
time windows in the site's own time zone, environment and pip rules, and preemption when
a window closes. Both the fair-share cycle and the FIFO fallback enforce them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import JobSpec, RuntimeEnv
from minga.common.lending import (
    LendingPolicy,
    Window,
    check_policy,
    format_days,
    lending_open,
    parse_window,
    pip_name,
)
from minga.scheduler.policy import Snapshot, schedule
from tests.test_fairshare_helpers import (
    HOUR,
    NOW,
    ShareSettings,
    apply,
    decide,
    inst,
    job,
    placed,
    pool,
    run,
    site,
    snap,
    waiting,
)

BELEM, TIJUANA = "America/Belem", "America/Tijuana"


def at(local: str, tz: str) -> float:
    """Unix time of a local wall-clock time ("2027-01-13 10:00") in zone `tz`."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).timestamp()


WEDNESDAY_10_BELEM = at("2027-01-13 10:00", BELEM)  # a working morning in Pará
WEDNESDAY_22_BELEM = at("2027-01-13 22:00", BELEM)
NIGHTS_ONLY = LendingPolicy(timezone=BELEM, closed_windows=(parse_window("Mon-Fri 08:00-20:00"),))


def federation(policy: LendingPolicy | None, pending=(), runs=(), institutions=None, **kw) -> Snapshot:
    """uchile (CL) owns 'sa' with 8 A100s; usp (BR) and unam (MX) have nothing of their own."""
    s = snap(
        [site("sa", "uchile", pool("A100", 8))],
        institutions if institutions is not None else [inst("uchile"), inst("usp", "BR"), inst("unam", "MX")],
        pending,
        runs,
        settings=ShareSettings(preemption_grace_seconds=600.0),
        **kw,
    )
    return replace(s, lending=(("sa", policy),) if policy else ())


def with_env(j, env=(), pip=()):
    spec = j.spec
    return replace(j, spec=replace(spec, runtime_env=RuntimeEnv(env=tuple(env), pip=tuple(pip))))


# -- windows and parsing --------------------------------------------------------------------


def test_windows_parse_and_print():
    w = parse_window("Mon-Fri 20:00-08:00")
    assert (w.days, w.start, w.end) == ((0, 1, 2, 3, 4), 20 * 60, 8 * 60)
    assert str(w) == "Mon-Fri 20:00-08:00"
    assert str(parse_window("sat,sun 00:00-24:00")) == "Sat-Sun 00:00-24:00"
    assert str(parse_window("22:00-06:00")) == "daily 22:00-06:00"
    assert parse_window("Fri-Mon 10:00-12:00").days == (0, 4, 5, 6)
    assert format_days((0, 2, 4)) == "Mon,Wed,Fri"
    for bad in (
        "Mon-Fri",
        "Mon-Fri 8-20",
        "Xyz 08:00-20:00",
        "Mon 25:00-26:00",
        "Mon 08:00-08:00",
        "Mon 24:00-02:00",
        "Mon 08:60-09:00",
    ):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_window_past_midnight_belongs_to_its_start_day():
    w = parse_window("Fri 20:00-08:00")
    assert w.contains(4, 21 * 60) and w.contains(5, 7 * 60 + 59)  # Friday night into Saturday
    assert not w.contains(5, 8 * 60) and not w.contains(4, 7 * 60)  # not Friday morning
    assert not w.contains(6, 1 * 60)


@settings(max_examples=300, deadline=None)
@given(
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 1439),
    end=st.integers(1, 1440),
    minute_of_week=st.integers(0, 7 * 1440 - 1),
)
def test_window_matches_its_minutes_of_the_week(days, start, end, minute_of_week):
    """A window is the union of [day start, day start + length) over its days, modulo a week."""
    if start == end % 1440 and end != 1440:
        return
    w = Window(tuple(sorted(days)), start, end)
    length = end - start if end > start else end + 1440 - start
    inside = any((minute_of_week - (d * 1440 + start)) % (7 * 1440) < length for d in days)
    assert w.contains(minute_of_week // 1440, minute_of_week % 1440) == inside


def test_windows_follow_the_site_time_zone():
    """Pará's night is not Tijuana's: the same instant is open for one and closed for the other."""
    instant = at("2027-01-13 21:00", BELEM)  # 16:00 in Tijuana (UTC-8 in January)
    tijuana = replace(NIGHTS_ONLY, timezone=TIJUANA)
    assert lending_open(NIGHTS_ONLY, instant) and not lending_open(tijuana, instant)
    assert not lending_open(NIGHTS_ONLY, WEDNESDAY_10_BELEM)
    assert lending_open(NIGHTS_ONLY, at("2027-01-16 10:00", BELEM))  # Saturday: open all day


def test_lend_windows_and_closed_windows_combine():
    policy = LendingPolicy(
        timezone=BELEM,
        lend_windows=(parse_window("Mon-Fri 20:00-08:00"),),
        closed_windows=(parse_window("Wed 23:00-24:00"),),
    )
    assert lending_open(policy, WEDNESDAY_22_BELEM)
    assert not lending_open(policy, at("2027-01-13 23:30", BELEM))
    assert lending_open(policy, at("2027-01-16 07:00", BELEM))  # Friday's night, into Saturday
    assert not lending_open(policy, at("2027-01-16 10:00", BELEM))  # Saturday day: no window


def test_check_policy_normalizes_and_refuses_bad_input():
    p = check_policy(
        LendingPolicy(allow_countries=("cl", "BR", "CL"), pip_allow=("Torch", "numpy"), env_allow=("HF_HOME",))
    )
    assert p.allow_countries == ("BR", "CL") and p.pip_allow == ("numpy", "torch")
    for bad in (
        LendingPolicy(no_env=True, env_allow=("X",)),
        LendingPolicy(max_lent_gpus=-1),
        LendingPolicy(closed_windows=(parse_window("08:00-20:00"),)),  # no time zone
        LendingPolicy(timezone="Mars/Olympus"),
        LendingPolicy(allow_countries=("Chile",)),
        LendingPolicy(env_allow=("1BAD",)),
        LendingPolicy(pip_allow=("torch>=2",)),
    ):
        with pytest.raises(ValueError):
            check_policy(bad)


def test_pip_names_are_normalized():
    assert pip_name("Torch_Audio>=2.0") == "torch-audio"
    assert pip_name("requests[socks]==2.31") == "requests"
    assert pip_name("git+https://github.com/x/y") == "" and pip_name("./pkg") == ""


# -- the policy ------------------------------------------------------------------------------


def test_without_policies_nothing_changes():
    pending = [job("g", "usp", 2), job("o", "uchile", 2)]
    assert decide(federation(None, pending)) == decide(federation(LendingPolicy(), pending))


@pytest.mark.parametrize(
    "policy, guest, allowed",
    [
        (LendingPolicy(allow_countries=("BR",)), "usp", True),
        (LendingPolicy(allow_countries=("BR",)), "unam", False),
        (LendingPolicy(deny_countries=("BR",)), "usp", False),
        (LendingPolicy(deny_countries=("BR",)), "unam", True),
        (LendingPolicy(allow_institutions=("unam",)), "unam", True),
        (LendingPolicy(allow_institutions=("unam",)), "usp", False),
        (LendingPolicy(allow_countries=("BR",), allow_institutions=("unam",)), "unam", True),  # either list
        (LendingPolicy(allow_countries=("BR",), deny_institutions=("usp",)), "usp", False),  # deny wins
    ],
)
def test_allow_and_deny_lists(policy, guest, allowed):
    d = decide(federation(policy, [job("g", guest, 2)]))
    assert ("g" in placed(d)) == allowed
    if not allowed:
        assert waiting(d)["g"].reason.startswith("lending: site sa ")
        assert not waiting(d)["g"].never_fits


def test_refusal_reasons_name_the_rule():
    d = decide(federation(LendingPolicy(allow_countries=("BR", "AR")), [job("g", "unam", 2)]))
    assert waiting(d)["g"].reason == "lending: site sa lends only to institutions in AR, BR"
    d = decide(federation(LendingPolicy(deny_institutions=("unam",)), [job("g", "unam", 2)]))
    assert waiting(d)["g"].reason == "lending: site sa does not lend to unam"


def test_own_institution_jobs_are_never_limited_by_lending_rules():
    policy = replace(NIGHTS_ONLY, allow_countries=("AR",), max_lent_gpus=0, guest_max_walltime_seconds=3600)
    s = federation(policy, [job("own", "uchile", 8)])
    assert placed(decide(s, WEDNESDAY_10_BELEM))["own"].site == "sa"


def test_max_lent_counts_live_guest_runs_and_this_cycles_placements():
    policy = LendingPolicy(max_lent_gpus=4)
    runs = [run("r1", "sa", "usp", 1), run("own", "sa", "uchile", 1)]  # 1 GPU lent already
    pending = [
        job("g1", "usp", 2, submitted=1),
        job("g2", "usp", 2, submitted=2),
        job("g3", "usp", 1, submitted=3),
        job("o", "uchile", 2, submitted=4),
    ]
    d = decide(federation(policy, pending, runs))
    assert set(placed(d)) == {"g1", "g3", "o"}  # 1 + 2 + 1 = 4 lent; the owner is not counted
    assert waiting(d)["g2"].reason == "lending: site sa lends at most 4 GPUs at once (3 lent now)"


def test_max_lent_zero_lends_nothing():
    d = decide(federation(LendingPolicy(max_lent_gpus=0), [job("g", "usp", 1), job("o", "uchile", 1)]))
    assert set(placed(d)) == {"o"}


def test_guest_walltime_must_be_declared_and_within_the_limit():
    policy = LendingPolicy(guest_max_walltime_seconds=4 * 3600)
    pending = [
        job("none", "usp", 1, submitted=1),
        job("long", "usp", 1, walltime=5 * 3600, submitted=2),
        job("ok", "usp", 1, walltime=4 * 3600, submitted=3),
        job("own", "uchile", 1, submitted=4),
    ]
    d = decide(federation(policy, pending))
    assert set(placed(d)) == {"ok", "own"}
    assert "walltime of at most 4h" in waiting(d)["none"].reason and "(this job: none)" in waiting(d)["none"].reason
    assert "(this job: 5h)" in waiting(d)["long"].reason


def test_guests_wait_outside_the_window_with_a_clear_reason():
    s = federation(NIGHTS_ONLY, [job("g", "usp", 2)])
    d = decide(s, WEDNESDAY_10_BELEM)
    assert d.placements == ()
    assert waiting(d)["g"].reason == "lending: site sa lends only outside Mon-Fri 08:00-20:00 America/Belem"
    assert placed(decide(s, WEDNESDAY_22_BELEM))["g"].site == "sa"


def test_guest_runs_are_preempted_when_the_window_closes():
    runs = [
        run("guest", "sa", "usp", 2, started=-HOUR),
        run("young", "sa", "usp", 2, started=-60),
        run("own", "sa", "uchile", 2, started=-HOUR),
        run("pinned", "sa", "unam", 2, started=-HOUR, preemptible=False),
    ]
    now = WEDNESDAY_10_BELEM
    s = federation(NIGHTS_ONLY, (), [replace(r, started_at=now - (NOW - r.started_at)) for r in runs])
    d = decide(s, now)
    # past the grace, a guest: preempted; the owner's never; a young run waits out its grace; a
    # non-preemptible run too, unless beyond its guarantee (unam has none: all it uses is borrowed)
    assert sorted(p.run_id for p in d.preemptions) == ["guest", "pinned"]
    assert all(
        p.reason.startswith("lending: site sa lends only outside Mon-Fri 08:00-20:00 America/Belem")
        for p in d.preemptions
    )
    # the next cycle, once they stopped: the owner's job takes the GPUs, a guest's still waits
    later = apply(s, d, now + 60)
    later = replace(later, pending=(job("mine", "uchile", 4), job("theirs", "usp", 2)))
    d2 = decide(later, now + 60)
    assert placed(d2)["mine"].site == "sa" and "theirs" not in placed(d2)
    assert d2.preemptions == ()  # "young" is still inside its grace period


def test_window_closing_spares_non_preemptible_runs_within_their_guarantee():
    institutions = [inst("uchile"), inst("usp", "BR", guarantee=(("A100", 4),))]
    now = WEDNESDAY_10_BELEM
    runs = [replace(run("pinned", "sa", "usp", 2, preemptible=False), started_at=now - HOUR)]
    d = decide(federation(NIGHTS_ONLY, (), runs, institutions=institutions), now)
    assert d.preemptions == ()


def test_env_and_pip_rules_apply_to_every_job():
    """They are about what reaches the site's Ray cluster, so the owner's jobs obey them too."""
    no_env = LendingPolicy(no_env=True)
    pending = [with_env(job("own", "uchile", 1), env=[("TOKEN", "x")]), with_env(job("plain", "usp", 1))]
    d = decide(federation(no_env, pending))
    assert set(placed(d)) == {"plain"}
    assert waiting(d)["own"].reason == "runtime: site sa accepts no environment variables (this job sets TOKEN)"

    allow = LendingPolicy(env_allow=("HF_HOME",), pip_allow=("numpy", "torch"))
    pending = [
        with_env(job("ok", "usp", 1, submitted=1), env=[("HF_HOME", "/d")], pip=["torch==2.3", "NumPy"]),
        with_env(job("env", "usp", 1, submitted=2), env=[("HF_HOME", "/d"), ("AWS_KEY", "k")]),
        with_env(job("pip", "uchile", 1, submitted=3), pip=["torch", "leftpad>=1"]),
    ]
    d = decide(federation(allow, pending))
    assert set(placed(d)) == {"ok"}
    assert "accepts only the environment variables HF_HOME (this job sets AWS_KEY)" in waiting(d)["env"].reason
    assert "installs only the pip packages numpy, torch (this job asks for leftpad)" in waiting(d)["pip"].reason
    d = decide(federation(LendingPolicy(no_pip=True), [with_env(job("p", "uchile", 1), pip=["torch"])]))
    assert waiting(d)["p"].reason == "runtime: site sa installs no pip packages"


def test_secret_environment_names_count_as_environment():
    if "secret_env" not in JobSpec.__dataclass_fields__:
        pytest.skip("no secret environment in this tree")
    j = job("s", "uchile", 1)
    j = replace(j, spec=replace(j.spec, secret_env=(("API_KEY", "***"),)))
    d = decide(federation(LendingPolicy(no_env=True), [j]))
    assert "API_KEY" in waiting(d)["s"].reason


def test_a_refusing_site_does_not_stop_placement_elsewhere():
    sites = [site("sa", "uchile", pool("A100", 8)), site("sb", "unicamp", pool("A100", 8), country="BR")]
    institutions = [inst("uchile"), inst("unicamp", "BR"), inst("usp", "BR")]
    s = replace(
        snap(sites, institutions, [job("g", "usp", 2)]), lending=(("sb", LendingPolicy(deny_institutions=("usp",))),)
    )
    assert placed(decide(s))["g"].site == "sa"


def test_the_fifo_policy_enforces_policies_too():
    """Before any institution exists, lending rules hold the same way (country unknown: an
    allow list of countries admits no guest)."""
    s = Snapshot(
        sites=(site("sa", "uchile", pool("A100", 8)),),
        live_runs=(),
        pending=(job("g", "usp", 2), job("o", "uchile", 2)),
        lending=(("sa", LendingPolicy(allow_countries=("BR",))),),
    )
    d = schedule(s, NOW)
    assert set(placed(d)) == {"o"}
    assert waiting(d)["g"].reason == "lending: site sa lends only to institutions in BR"
    runs = (replace(run("guest", "sa", "usp", 2), started_at=WEDNESDAY_10_BELEM - HOUR),)
    d = schedule(replace(s, pending=(), live_runs=runs, lending=(("sa", NIGHTS_ONLY),)), WEDNESDAY_10_BELEM)
    assert [p.run_id for p in d.preemptions] == ["guest"]


def test_deterministic():
    pending = [job(f"j{i}", ("usp", "unam", "uchile")[i % 3], 1 + i % 3, submitted=i) for i in range(30)]
    s = federation(replace(NIGHTS_ONLY, max_lent_gpus=3, deny_countries=("MX",)), pending)
    assert decide(s, WEDNESDAY_22_BELEM) == decide(s, WEDNESDAY_22_BELEM)
