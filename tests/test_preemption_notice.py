"""The preemption notice without Ray (docs/preemption.md): the broker puts the federation's
notice on every StartRun, first lease and resend alike; the agent hands it to Ray as
RAY_JOB_STOP_WAIT_TIME_S with the run's MINGA_* variables, which a job cannot override."""

from __future__ import annotations

import pytest

from minga.agent.backend import RunRequest, runtime_env_for
from minga.agent.reconcile import run_request
from minga.common.domain import InvalidArgument, JobSpec, RunState, RuntimeEnv
from minga.common.site_messages import RunReport, StartRunCommand
from minga.scheduler.policy import ShareSettings
from minga.scheduler.store.runs import notice_seconds
from minga.scheduler.validation import check_job_spec
from minga.v1 import site_pb2
from tests.fakes.fake_broker import make_start_run
from tests.test_agent_session import Site, site  # noqa: F401 - the fixture
from tests.test_store import NOW, cycle, fed, store, store_url, submit  # noqa: F401 - fixtures

# -- broker -------------------------------------------------------------------------


def test_every_start_run_carries_the_federations_notice(fed):
    submit(fed, "j-1", gpus=2)
    [first] = cycle(fed)
    assert isinstance(first, StartRunCommand) and first.notice_seconds == 60  # the default
    fed.shares.update_settings(preemption_notice_seconds=120.4)
    submit(fed, "j-2", gpus=2, submitted=1)
    [second] = cycle(fed, NOW + 1)
    assert second.notice_seconds == 120  # whole seconds
    # A resend (the site's Hello did not list the run) carries today's notice too.
    [resent] = fed.runs.reconcile_site(
        "dcc", [RunReport(first.run.id, RunState.UNKNOWN), RunReport(second.run.id, RunState.RUNNING)], NOW + 2
    )
    assert (resent.run.id, resent.notice_seconds) == (first.run.id, 120)


@pytest.mark.parametrize(("setting", "seconds"), [(60.0, 60), (1.0, 1), (2.5, 2), (3600.0, 3600), (0.2, 1)])
def test_notice_in_whole_seconds_never_zero(setting, seconds):
    """Ray takes an integer, and 0 on the wire means "Ray's default"; the admin's bounds
    are 1..3600 s, a smaller value still gets one second."""
    assert notice_seconds(ShareSettings(preemption_notice_seconds=setting)) == seconds


def test_a_job_may_not_set_minga_s_variables():
    for name in ("MINGA_ATTEMPT", "MINGA_JOB_ID", "MINGA_RUN_ID", "RAY_JOB_STOP_WAIT_TIME_S"):
        with pytest.raises(InvalidArgument, match=f"{name}.*set by minga"):
            check_job_spec(JobSpec(entrypoint="x", runtime_env=RuntimeEnv(env=((name, "7"),))))
        with pytest.raises(InvalidArgument, match=f"{name}.*set by minga"):
            check_job_spec(JobSpec(entrypoint="x", secret_env=((name, "7"),)))
    check_job_spec(JobSpec(entrypoint="x", runtime_env=RuntimeEnv(env=(("MINGA_CKPT", "/data"),))))


# -- agent --------------------------------------------------------------------------


def test_start_run_becomes_a_ray_runtime_env_with_the_notice_and_the_attempt():
    start = make_start_run("minga-j-1-a2", "j-1", epoch=2, env={"FLAVOUR": "quinoa"}, notice_seconds=45)
    start = site_pb2.StartRun.FromString(start.SerializeToString())
    run = run_request(start)
    assert run.notice_seconds == 45
    assert runtime_env_for(run)["env_vars"] == {
        "FLAVOUR": "quinoa",
        "MINGA_JOB_ID": "j-1",
        "MINGA_RUN_ID": "minga-j-1-a2",
        "MINGA_ATTEMPT": "2",
        "RAY_JOB_STOP_WAIT_TIME_S": "45",
    }


def test_an_older_broker_s_zero_leaves_ray_s_default():
    env = runtime_env_for(RunRequest(run_id="minga-j-1-a1", job_id="j-1", epoch=1, entrypoint="x"))["env_vars"]
    assert env == {"MINGA_JOB_ID": "j-1", "MINGA_RUN_ID": "minga-j-1-a1", "MINGA_ATTEMPT": "1"}


def test_minga_s_variables_win_over_the_job_s():
    """Jobs an older broker accepted may still name them: minga's values are the ones set,
    and a job's own stop wait never replaces the federation's notice (or Ray's default)."""
    run = RunRequest(
        run_id="minga-j-1-a3",
        job_id="j-1",
        epoch=3,
        entrypoint="x",
        notice_seconds=30,
        env={"MINGA_ATTEMPT": "1", "RAY_JOB_STOP_WAIT_TIME_S": "3600", "KEEP": "me"},
        secret_env={"MINGA_RUN_ID": "forged"},
    )
    env = runtime_env_for(run)["env_vars"]
    assert (env["MINGA_ATTEMPT"], env["MINGA_RUN_ID"], env["RAY_JOB_STOP_WAIT_TIME_S"], env["KEEP"]) == (
        "3",
        "minga-j-1-a3",
        "30",
        "me",
    )
    old = RunRequest(
        run_id="minga-j-1-a1", job_id="j-1", epoch=1, entrypoint="x", env={"RAY_JOB_STOP_WAIT_TIME_S": "3600"}
    )
    assert "RAY_JOB_STOP_WAIT_TIME_S" not in runtime_env_for(old)["env_vars"]


def test_the_agent_submits_the_notice_it_was_sent(site: Site) -> None:
    site.start_agent()
    site.broker.start_run(make_start_run("minga-j-1-a4", "j-1", epoch=4, notice_seconds=7))
    assert site.broker.wait_for(lambda: len(site.backend.submissions) == 1)
    submitted = site.backend.submissions[0]
    assert (submitted.notice_seconds, runtime_env_for(submitted)["env_vars"]["MINGA_ATTEMPT"]) == (7, "4")
