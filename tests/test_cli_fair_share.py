"""Issue 10 through a real broker on port 0 and the `minga` CLI: `admin policy set|show`
with fair-share preemption, its threshold, cap and notice, the entitlement floor and the
gang reservations' minimum age; and `quota show` with each institution's fair share now
next to what it holds."""

from __future__ import annotations

import json

import pytest

from minga.v1 import common_pb2, job_pb2
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory
from tests.test_cli_shares import minga


@pytest.fixture
def admin(broker: RunningBroker) -> str:
    return broker.admin_token_file.read_text().strip()


def test_policy_set_and_show_each_new_field(broker: RunningBroker, admin: str) -> None:
    shown = json.loads(minga(broker, admin, "admin", "policy", "show", "-o", "json").stdout)
    assert (
        shown["fair_share_preemption"],
        shown["preemption_threshold"],
        shown["preemption_cap"],
        shown["preemption_notice_seconds"],
        shown["base_grant_fraction"],
    ) == (True, 0.1, 0.25, 60.0, 0.25)
    out = minga(
        broker,
        admin,
        "admin",
        "policy",
        "set",
        "--no-fair-share-preemption",
        "--preemption-threshold",
        "0",
        "--preemption-cap",
        "0.5",
        "--preemption-notice",
        "2m",
        "--base-grant-fraction",
        "0.3",
        "--preemption-grace",
        "5m",
        "-o",
        "json",
    )
    assert out.exit_code == 0, out.output
    policy = json.loads(out.stdout)
    assert (
        policy["fair_share_preemption"],
        policy["preemption_threshold"],
        policy["preemption_cap"],
        policy["preemption_notice_seconds"],
        policy["base_grant_fraction"],
        policy["preemption_grace_seconds"],
    ) == (False, 0.0, 0.5, 120.0, 0.3, 300.0)
    assert policy["share_policy"] == "contribution" and policy["half_life_seconds"] == 7 * 86400  # untouched
    settings = broker.broker.core.store.shares.settings()
    assert (
        settings.fair_share_preemption,
        settings.preemption_threshold,
        settings.preemption_cap,
        settings.preemption_notice_seconds,
        settings.base_grant_fraction,
    ) == (False, 0.0, 0.5, 120.0, 0.3)

    table = minga(broker, admin, "admin", "policy", "show")
    assert table.exit_code == 0, table.output
    lines = {line.split("  ")[0]: line for line in table.stdout.splitlines()}
    assert "off" in lines["fair-share preemption"]
    assert "0 (only for an account under 100% of its fair share)" in lines["preemption threshold"]
    assert "0.5 (at most 50% of the GPUs per cycle)" in lines["preemption cap"]
    assert "2m (SIGTERM, then SIGKILL)" in lines["preemption notice"]
    assert "at least 30% of the mean weight" in lines["entitlement floor"] and "5m" in lines["preemption grace"]

    on = minga(broker, admin, "admin", "policy", "set", "--fair-share-preemption", "-o", "json")
    assert json.loads(on.stdout)["fair_share_preemption"] is True
    assert json.loads(on.stdout)["preemption_cap"] == 0.5  # kept


@pytest.mark.parametrize(
    "flag,value,says",
    [
        ("--preemption-threshold", "1", "below 1"),
        ("--preemption-threshold", "-0.1", "below 1"),
        ("--preemption-cap", "0", "above 0"),
        ("--preemption-cap", "1.5", "at most 1"),
        ("--preemption-notice", "0s", "1s to 1h"),
        ("--preemption-notice", "2h", "1s to 1h"),
        ("--preemption-notice", "soon", "bad duration"),
        ("--base-grant-fraction", "0.95", "0 to 0.9"),
        ("--base-grant-fraction", "nan", "0 to 0.9"),
        ("--reservation-min-age", "8d", "0s to 7d"),
        ("--reservation-min-age", "later", "bad duration"),
    ],
)
def test_a_bad_flag_is_one_clear_error_and_changes_nothing(
    broker: RunningBroker, admin: str, flag: str, value: str, says: str
) -> None:
    before = broker.broker.core.store.shares.settings()
    out = minga(broker, admin, "admin", "policy", "set", "--preemption-cap", "0.75", flag, value)
    assert out.exit_code == 2, out.output
    assert flag in out.output and says in out.output and "Traceback" not in out.output
    assert broker.broker.core.store.shares.settings() == before


def test_reservation_min_age_is_set_and_shown(broker: RunningBroker, admin: str) -> None:
    shown = json.loads(minga(broker, admin, "admin", "policy", "show", "-o", "json").stdout)
    assert shown["reservation_min_age_seconds"] == 600.0  # Slurm's bf_min_age_reserve, 10 minutes
    out = minga(broker, admin, "admin", "policy", "set", "--reservation-min-age", "30m", "-o", "json")
    assert out.exit_code == 0, out.output
    policy = json.loads(out.stdout)
    assert policy["reservation_min_age_seconds"] == 1800.0 and policy["preemption_cap"] == 0.25  # the rest kept
    assert broker.broker.core.store.shares.settings().reservation_min_age_seconds == 1800.0
    table = minga(broker, admin, "admin", "policy", "show")
    assert table.exit_code == 0, table.output
    lines = {line.split("  ")[0]: line for line in table.stdout.splitlines()}
    assert "30m (gangs waiting this long reserve first)" in lines["reservation min age"]
    zero = minga(broker, admin, "admin", "policy", "set", "--reservation-min-age", "0", "-o", "json")
    assert zero.exit_code == 0, zero.output
    assert json.loads(zero.stdout)["reservation_min_age_seconds"] == 0.0  # 0 is a value, not "keep"
    assert broker.broker.core.store.shares.settings().reservation_min_age_seconds == 0.0


def submit(caller: Caller, gpus: int) -> str:
    spec = common_pb2.JobSpec(entrypoint="python train.py", resources=common_pb2.Resources(gpus=gpus))
    return caller.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=caller.md).job.id


def test_quota_show_splits_a_site_by_max_min_not_by_what_is_held(broker: RunningBroker, admin: str) -> None:
    """A host lends its 12 GPUs; a, b and c (equal static weights, three countries) each
    have a backlog. `a` came first and holds all 12, yet each is owed 4 now."""
    core = broker.broker.core
    core.cycle.stop()  # the test runs each cycle itself
    for slug, cc in (("host", "CL"), ("a", "AR"), ("b", "BR"), ("c", "MX")):
        broker.institution(slug, cc)
    site = ScriptedSite(broker.address, broker.join("host", "big"), gpu_inventory("A100", 12))
    try:
        site.next("welcome")
        assert minga(broker, admin, "admin", "policy", "set", "--policy", "static").exit_code == 0
        ra, rb, rc = (broker.researcher(f"r{slug}", slug) for slug in ("a", "b", "c"))
        for _ in range(3):
            submit(ra, 4)
        core.cycle.run_once()  # only a is waiting: it takes all 12
        for _ in range(3):
            submit(ra, 4), submit(rb, 4), submit(rc, 4)

        out = minga(broker, admin, "quota", "show", "-o", "json")
        assert out.exit_code == 0, out.output
        view = json.loads(out.stdout)
        now = {i["institution"]: i for i in view["institutions"]}
        assert {s: (i["held"], i["demand"], i["fair_share_gpus"]) for s, i in now.items()} == {
            "a": (12, 24, 4.0),
            "b": (0, 12, 4.0),
            "c": (0, 12, 4.0),
            "host": (0, 0, 0.0),
        }
        assert now["host"]["guarantee"] == 12 and now["a"]["guarantee"] == 0
        assert view["capacity"] == 12 and view["share_policy"] == "static"
        assert view["base_grant_fraction"] == 0.25 and view["base_grant"] == 1.0
        assert view["tree"] == []
        rows = {(r["institution"], r["gpu_model"]): r for r in view["rows"]}
        assert rows[("a", "A100")]["held"] == 12 and rows[("host", "A100")]["lent"] == 12

        table = minga(broker, admin, "quota", "show")
        assert table.exit_code == 0, table.output
        assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
        head, *body = table.stdout.splitlines()
        assert head.split()[-4:] == ["GUAR", "HELD", "DEMAND", "SHARE"]
        cells = {line.split()[0]: line.split() for line in body[:4]}
        assert cells["a"][-3:] == ["12", "24", "4"] and cells["b"][-3:] == ["0", "12", "4"]
        assert "of the 12 GPUs that can hold runs now" in table.stdout
        assert "Entitlement floor: none under the static policy" in table.stdout

        tree = json.loads(minga(broker, admin, "quota", "show", "--tree", "-o", "json").stdout)["tree"]
        shares = {n["id"]: n["fair_share_gpus"] for n in tree}
        assert (shares["AR"], shares["a"], shares["a/default"], shares["CL"]) == (4.0, 4.0, 4.0, 0.0)
        assert {n["id"]: n["held"] for n in tree}["AR"] == 12
        wide = minga(broker, admin, "quota", "show", "--tree")
        assert all(len(line) <= 80 for line in wide.stdout.splitlines()), wide.stdout
    finally:
        site.close()


def test_quota_show_names_the_base_grant_in_effect(broker: RunningBroker, admin: str) -> None:
    """Under `contribution`, the floor is the base grant in effect and its fraction."""
    broker.institution("uchile", "CL")
    minga(broker, admin, "admin", "policy", "set", "--base-grant-fraction", "0.5", "--base-grant", "2")
    view = json.loads(minga(broker, admin, "quota", "show", "-o", "json").stdout)
    assert (view["share_policy"], view["base_grant"], view["base_grant_fraction"]) == ("contribution", 2.0, 0.5)
    words = " ".join(minga(broker, admin, "quota", "show").stdout.split())
    assert "Entitlement floor: base grant 2 in effect, so every institution weighs at least 50% of the mean." in words
