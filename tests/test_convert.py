"""The wire layer: domain values to and from their messages (minga.common.wire)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minga.common.domain import (
    GpuPool,
    InvalidArgument,
    Inventory,
    Job,
    JobPreemption,
    JobSpec,
    JobState,
    Resources,
    Role,
    Run,
    RunState,
    RuntimeEnv,
    Site,
    SiteState,
)
from minga.common.site_messages import RunReport, StartRunCommand, StopRunCommand
from minga.common.site_view import SiteView
from minga.common.wire import enums, jobs, runs, sites
from minga.v1 import common_pb2, site_pb2

PROPS = settings(max_examples=150, deadline=None)

int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
uint_like32 = st.integers(min_value=0, max_value=2**31 - 1)
int64 = st.integers(min_value=0, max_value=2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
countries = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
env_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)


@st.composite
def specs(draw) -> JobSpec:
    """Domain specs in the normal form `spec_from_pb` produces (env sorted, defaults filled)."""
    env = draw(st.dictionaries(env_keys, text, max_size=4))
    return JobSpec(
        entrypoint=draw(text),
        name=draw(text),
        runtime_env=RuntimeEnv(
            working_dir_digest=draw(st.sampled_from(["", "sha256:" + "ab" * 32])),
            pip=tuple(draw(st.lists(text, max_size=3))),
            env=tuple(sorted(env.items())),
        ),
        resources=Resources(
            gpus=draw(uint_like32),
            gpu_models=tuple(draw(st.lists(text, max_size=3))),
            min_gpu_memory_mb=draw(int64),
            cpus=draw(finite.filter(lambda x: x != 0)),
            memory_mb=draw(int64),
        ),
        countries=tuple(draw(st.lists(countries, max_size=3))),
        walltime_seconds=draw(int64),
        priority=draw(int32),
        max_attempts=draw(st.integers(min_value=1, max_value=2**31 - 1)),
        after=tuple(draw(st.lists(text, max_size=2))),
    )


pools = st.builds(GpuPool, model=text, memory_mb=int64, total=uint_like32, free=uint_like32, largest_node=uint_like32)
inventories = st.builds(
    Inventory, gpus=st.lists(pools, max_size=4).map(tuple), cpus=finite, memory_mb=int64, nodes=uint_like32
)


def wire(msg):
    """Through the bytes, as the network would carry it."""
    return type(msg).FromString(msg.SerializeToString())


# -- JobSpec --------------------------------------------------------------------


@PROPS
@given(specs())
def test_spec_round_trip(spec):
    assert jobs.spec_from_pb(wire(jobs.spec_to_pb(spec))) == spec


@PROPS
@given(specs())
def test_spec_proto_round_trip(spec):
    pb = jobs.spec_to_pb(spec)
    assert jobs.spec_to_pb(jobs.spec_from_pb(pb)) == pb


def test_spec_from_pb_fills_defaults_and_normalizes():
    pb = common_pb2.JobSpec(
        entrypoint="python t.py",
        runtime_env=common_pb2.RuntimeEnv(env={"B": "2", "A": "1"}),
        resources=common_pb2.Resources(gpus=2),
        countries=["cl", "Br"],
    )
    spec = jobs.spec_from_pb(pb)
    assert spec.resources.cpus == 1.0  # 0 on the wire: the default of 1
    assert spec.max_attempts == 3  # 0 on the wire: the default of 3
    assert spec.countries == ("CL", "BR")
    assert spec.runtime_env.env == (("A", "1"), ("B", "2"))
    assert spec.resources.gpus == 2 and spec.resources.gpu_models == ()


def test_spec_fields_land_where_they_belong():
    spec = JobSpec(
        entrypoint="python t.py",
        name="n",
        runtime_env=RuntimeEnv("sha256:" + "0" * 64, ("torch",), (("K", "V"),)),
        resources=Resources(gpus=4, gpu_models=("A100",), min_gpu_memory_mb=40_000, cpus=8.5, memory_mb=1024),
        countries=("CL",),
        walltime_seconds=3600,
        priority=3,
        max_attempts=2,
    )
    pb = jobs.spec_to_pb(spec)
    assert (pb.entrypoint, pb.name, pb.walltime_seconds, pb.priority, pb.max_attempts) == (
        "python t.py",
        "n",
        3600,
        3,
        2,
    )
    assert list(pb.countries) == ["CL"]
    assert (
        pb.resources.gpus,
        list(pb.resources.gpu_models),
        pb.resources.min_gpu_memory_mb,
        pb.resources.cpus,
        pb.resources.memory_mb,
    ) == (4, ["A100"], 40_000, 8.5, 1024)
    assert pb.runtime_env.working_dir_digest == "sha256:" + "0" * 64
    assert list(pb.runtime_env.pip) == ["torch"] and dict(pb.runtime_env.env) == {"K": "V"}


def test_job_to_pb():
    spec = JobSpec(entrypoint="echo hi", resources=Resources(gpus=1))
    job = Job(
        id="j-1",
        spec=spec,
        state=JobState.RUNNING,
        owner="ana",
        institution="uchile",
        submitted_at=10.5,
        attempts=2,
        reason="r",
        site="s",
        country="CL",
        run_id="minga-j-1-a2",
        gpu_model="A100",
        started_at=11.0,
        finished_at=0.0,
    )
    pb = wire(jobs.job_to_pb(job))
    assert pb.state == common_pb2.JOB_STATE_RUNNING
    assert (
        pb.id,
        pb.owner,
        pb.institution,
        pb.site,
        pb.country,
        pb.attempts,
        pb.reason,
        pb.run_id,
        pb.submitted_at,
        pb.started_at,
        pb.finished_at,
        pb.gpu_model,
    ) == ("j-1", "ana", "uchile", "s", "CL", 2, "r", "minga-j-1-a2", 10.5, 11.0, 0.0, "A100")
    assert jobs.spec_from_pb(pb.spec) == spec
    assert not pb.HasField("last_preemption")


def test_job_to_pb_keeps_the_last_preemption():
    last = JobPreemption(at=20.0, kind="reclaim", beneficiary="uchile", reason="reclaim: uchile is below ...")
    job = Job(
        id="j-1",
        spec=JobSpec(entrypoint="x"),
        state=JobState.PENDING,
        owner="bia",
        institution="usp",
        submitted_at=10.0,
        attempts=1,
        reason="waiting",
        last_preemption=last,
    )
    pb = wire(jobs.job_to_pb(job)).last_preemption
    assert JobPreemption(pb.at, pb.kind, pb.beneficiary, pb.reason) == last


# -- Inventory --------------------------------------------------------------------


@PROPS
@given(inventories)
def test_inventory_round_trip(inv):
    assert sites.inventory_from_pb(wire(sites.inventory_to_pb(inv))) == inv


def test_site_to_pb():
    inv = Inventory(gpus=(GpuPool("A100", 81_920, 8, 6, 4),), cpus=64.0, memory_mb=512_000, nodes=2)
    site = Site(
        name="uchile-dcc",
        institution="uchile",
        country="CL",
        state=SiteState.CORDONED,
        connected=True,
        inventory=inv,
        last_seen=5.0,
    )
    pb = sites.site_view_to_pb(SiteView(site, (("A100", 2),)))
    assert (pb.name, pb.institution, pb.country, pb.connected, pb.last_seen) == (
        "uchile-dcc",
        "uchile",
        "CL",
        True,
        5.0,
    )
    assert pb.state == common_pb2.SITE_STATE_CORDONED
    assert dict(pb.gpus_in_use) == {"A100": 2}
    assert sites.inventory_from_pb(pb.inventory) == inv


# -- enums ------------------------------------------------------------------------


def _names(enum_type, prefix: str) -> set[str]:
    return {v.name.removeprefix(prefix) for v in enum_type.DESCRIPTOR.values if not v.name.endswith("_UNSPECIFIED")}


def test_domain_and_wire_enums_have_the_same_members():
    assert _names(common_pb2.JobState, "JOB_STATE_") == {s.name for s in JobState}
    assert _names(common_pb2.RunState, "RUN_STATE_") == {s.name for s in RunState}
    assert _names(common_pb2.SiteState, "SITE_STATE_") == {s.name for s in SiteState}
    assert _names(common_pb2.Role, "ROLE_") == {r.name for r in Role}


@pytest.mark.parametrize("state", list(JobState))
def test_job_state_round_trip(state):
    value = enums.job_state_to_pb(state)
    assert common_pb2.JobState.Name(value) == f"JOB_STATE_{state.name}"
    assert enums.job_state_from_pb(value) is state


def test_job_state_unspecified_means_any():
    assert enums.job_state_from_pb(common_pb2.JOB_STATE_UNSPECIFIED) is None


@pytest.mark.parametrize("state", [s for s in RunState if s is not RunState.LOST])
def test_run_state_round_trip(state):
    value = enums.run_state_to_pb(state)
    assert common_pb2.RunState.Name(value) == f"RUN_STATE_{state.name}"
    assert enums.run_state_from_pb(value) is state


@pytest.mark.parametrize("value", [common_pb2.RUN_STATE_UNSPECIFIED, common_pb2.RUN_STATE_LOST, 99, -1])
def test_run_states_a_site_may_not_report_are_refused(value):
    with pytest.raises(InvalidArgument):
        enums.run_state_from_pb(value)


@pytest.mark.parametrize("parse", [enums.job_state_from_pb, enums.role_from_pb])
def test_unknown_enum_values_are_invalid_arguments(parse):
    with pytest.raises(InvalidArgument, match="not a known value"):
        parse(77)


@pytest.mark.parametrize("state", list(SiteState))
def test_site_state_to_pb(state):
    assert common_pb2.SiteState.Name(enums.site_state_to_pb(state)) == f"SITE_STATE_{state.name}"


@pytest.mark.parametrize("role", list(Role))
def test_role_round_trip(role):
    value = enums.role_to_pb(role)
    assert common_pb2.Role.Name(value) == f"ROLE_{role.name}"
    assert enums.role_from_pb(value) is role


def test_role_unspecified_is_none():
    assert enums.role_from_pb(common_pb2.ROLE_UNSPECIFIED) is None


# -- site stream ------------------------------------------------------------------


def test_run_report_from_pb():
    pb = site_pb2.RunReport(
        run_id="minga-j-1-a1", job_id="j-1", epoch=1, state=common_pb2.RUN_STATE_FAILED, message="exit 3"
    )
    assert runs.run_report_from_pb(wire(pb)) == RunReport("minga-j-1-a1", RunState.FAILED, "exit 3")


def test_run_report_without_state_is_refused():
    with pytest.raises(InvalidArgument):
        runs.run_report_from_pb(site_pb2.RunReport(run_id="r"))


@pytest.mark.parametrize(
    ("report", "failure"),
    [
        (RunReport("r", RunState.RUNNING), site_pb2.FAILURE_KIND_UNSPECIFIED),
        (RunReport("r", RunState.FAILED, "exit 3"), site_pb2.FAILURE_KIND_USER),
        (RunReport("r", RunState.FAILED, "Ray lost it", infrastructure=True), site_pb2.FAILURE_KIND_INFRASTRUCTURE),
    ],
)
def test_run_report_round_trip(report, failure):
    pb = wire(runs.run_report_to_pb(report, "j-1", 2))
    assert (pb.job_id, pb.epoch, pb.failure) == ("j-1", 2, failure)
    assert runs.run_report_from_pb(pb) == report


def test_a_long_report_text_keeps_its_end_within_the_limit():
    pb = runs.run_report_to_pb(RunReport("r", RunState.FAILED, "x" * 50_000 + "the error"), "j", 1)
    assert len(pb.message) == runs.MAX_MESSAGE_CHARS
    assert pb.message.startswith("...") and pb.message.endswith("the error")


@PROPS
@given(specs(), st.integers(min_value=1, max_value=100), text)
def test_start_command_to_broker_message(spec, epoch, model):
    run = Run(id=f"minga-j-1-a{epoch}", job_id="j-1", site="s", epoch=epoch, gpu_model=model, gpus=2, cpus=1.0)
    msg = wire(runs.command_to_pb(StartRunCommand(site="s", run=run, spec=spec)))
    assert msg.WhichOneof("body") == "start"
    assert (msg.start.run_id, msg.start.job_id, msg.start.epoch, msg.start.gpu_model) == (run.id, "j-1", epoch, model)
    assert jobs.spec_from_pb(msg.start.spec) == spec
    assert msg.start.notice_seconds == 0  # not set: the agent leaves Ray's default


def test_start_command_carries_the_notice():
    run = Run(id="minga-j-1-a1", job_id="j-1", site="s", epoch=1, gpu_model="A100", gpus=1, cpus=1.0)
    cmd = StartRunCommand(site="s", run=run, spec=JobSpec(entrypoint="x"), notice_seconds=90)
    assert wire(runs.command_to_pb(cmd)).start.notice_seconds == 90


def test_stop_command_to_broker_message():
    msg = wire(runs.command_to_pb(StopRunCommand(site="s", run_id="minga-j-1-a1", reason="job cancelled")))
    assert msg.WhichOneof("body") == "stop"
    assert (msg.stop.run_id, msg.stop.reason) == ("minga-j-1-a1", "job cancelled")


@given(specs())
@settings(max_examples=100)
def test_the_stored_spec_text_is_what_asdict_would_write(spec: JobSpec):
    """spec_to_json skips asdict's deep copy (a cost on every submit), not its output."""
    import json
    from dataclasses import asdict

    from minga.scheduler.store.json_columns import spec_to_json

    expected = asdict(spec)
    del expected["secret_env"]
    if spec.secret_env:
        expected["secret_keys"] = [k for k, _ in spec.secret_env]
    assert spec_to_json(spec) == json.dumps(expected, sort_keys=True)
