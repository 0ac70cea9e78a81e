"""Issue 11, section 3: a typo in a job's country or GPU model is refused at submit,
with the closest known values, instead of leaving the job waiting forever; the
refusal changes nothing, and `--allow-unknown` queues such a job for a site
expected to join. Policy rules first, then through a real broker on port 0."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from minga.common.countries import ISO_3166_ALPHA2
from minga.common.domain import GpuPool, InvalidArgument, Inventory, Job, JobSpec, JobState, Resources, Site, SiteState
from minga.scheduler.policy.feasibility import never_fits_reason, submit_rejection
from minga.scheduler.validation import check_country, check_job_spec
from minga.v1 import common_pb2, job_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory
from tests.test_cli_shares import minga


def site(
    name: str,
    model: str = "A100",
    gpus: int = 4,
    country: str = "CL",
    reported: bool = True,
    state: SiteState = SiteState.READY,
    connected: bool = True,
) -> Site:
    pools = (GpuPool(model=model, memory_mb=40960, total=gpus, free=gpus, largest_node=gpus),) if reported else ()
    return Site(
        name=name,
        institution="uchile",
        country=country,
        state=state,
        connected=connected,
        inventory=Inventory(gpus=pools, cpus=16.0 if reported else 0.0, nodes=1),
        reported=reported,
    )


def job_spec(gpus: int = 1, models: tuple[str, ...] = (), countries: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec("python train.py", resources=Resources(gpus=gpus, gpu_models=models), countries=countries)


# -- country codes ----------------------------------------------------------------


def test_the_country_list_is_iso_3166_alpha2() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    assert {"AR", "BR", "CL", "MX", "PE", "UY"} <= ISO_3166_ALPHA2
    assert not {"XX", "ZZ", "UK", "XK", "EU"} & ISO_3166_ALPHA2


@pytest.mark.parametrize(
    "field,spec",
    [
        ("spec.countries", job_spec(countries=("XX",))),
        ("spec.countries", job_spec(countries=("CL", "ZZ"))),
        ("spec.data_country", JobSpec("python train.py", data_country="XX")),
    ],
)
def test_an_unassigned_country_code_is_invalid(field: str, spec: JobSpec) -> None:
    with pytest.raises(InvalidArgument, match=f"{field} .* not an assigned ISO 3166-1 country code"):
        check_job_spec(spec)


def test_country_codes_are_upper_cased_then_checked() -> None:
    assert check_country("country", "cl") == "CL"
    with pytest.raises(InvalidArgument, match="'UK'"):
        check_country("country", "uk")  # GB is the code


# -- submit_rejection: what no site has -------------------------------------------


def test_a_gpu_model_no_site_has_is_refused_with_the_closest_known_ones() -> None:
    sites = [site("a", "A100"), site("b", "T4"), site("c", "H100", country="BR")]
    reason = submit_rejection(job_spec(models=("A10O",)), sites)
    assert reason is not None
    assert "GPU model 'A10O'" in reason and "did you mean A100?" in reason
    assert "known: A100, H100, T4" in reason and "--allow-unknown" in reason


def test_one_unknown_model_among_several_is_refused() -> None:
    reason = submit_rejection(job_spec(models=("A100", "H20O")), [site("a", "A100"), site("b", "H200")])
    assert reason is not None and "'H20O'" in reason and "did you mean H200?" in reason


def test_a_country_no_site_is_in_is_refused_with_the_known_ones() -> None:
    sites = [site("a", country="CL"), site("b", country="AR")]
    reason = submit_rejection(job_spec(countries=("AT",)), sites)
    assert reason is not None
    assert "country 'AT'" in reason and "did you mean AR?" in reason and "known: AR, CL" in reason


def test_a_country_is_known_from_a_site_that_has_not_reported_yet() -> None:
    """Its country was given when it joined; only its GPUs are unknown."""
    assert submit_rejection(job_spec(countries=("PE",)), [site("a"), site("b", country="PE", reported=False)]) is None


def test_what_sites_have_is_accepted() -> None:
    sites = [site("a", "A100"), site("b", "T4", country="BR")]
    assert submit_rejection(job_spec(models=("A100", "T4"), countries=("BR", "CL")), sites) is None
    assert submit_rejection(job_spec(gpus=0, models=("A10O",)), sites) is None  # no GPU asked: models unused


def test_a_lost_or_disconnected_site_still_counts_with_its_last_inventory() -> None:
    """A retry seconds later must get the same answer: a site briefly gone (or a broker just
    restarted, which marks every site disconnected) keeps its last reported GPUs."""
    gone = [site("a", "A100", 8, state=SiteState.LOST, connected=False)]
    assert submit_rejection(job_spec(gpus=8, models=("A100",), countries=("CL",)), gone) is None


def test_a_site_that_has_not_reported_keeps_gpu_checks_from_refusing() -> None:
    """It could hold anything: the job is accepted to wait, never refused for it."""
    sites = [site("a", "A100", 4), site("new", reported=False)]
    assert submit_rejection(job_spec(gpus=8), sites) is None
    assert submit_rejection(job_spec(models=("H100",)), sites) is None
    assert submit_rejection(job_spec(gpus=8), sites[:1]) is not None  # the control: refused without it


# -- never_fits_reason: what the waiting job says ------------------------------------


def pending(spec: JobSpec) -> Job:
    return Job(
        id="j-1", spec=spec, state=JobState.PENDING, owner="ana", institution="uchile", submitted_at=1_700_000_000.0
    )


def test_a_job_that_named_no_country_is_not_told_about_allowed_countries() -> None:
    sites = [site("a", "A100")]
    assert never_fits_reason(pending(job_spec(models=("H100",))), sites) == "model: no site has a H100 GPU"
    labelled = JobSpec("x", resources=Resources(gpus=1), site_labels=(("rack", "b"),))
    assert never_fits_reason(pending(labelled), sites) == "label: no site carries rack=b"
    cpus = JobSpec("x", resources=Resources(gpus=0, cpus=64))
    assert (
        never_fits_reason(pending(cpus), sites) == "capacity: needs 64 CPUs; no site that could hold it has that many"
    )


def test_a_job_that_named_countries_is_told_about_them() -> None:
    reason = never_fits_reason(pending(job_spec(models=("H100",), countries=("CL",))), [site("a", "A100")])
    assert reason == "model: no site in the allowed countries has a H100 GPU"


def test_a_job_only_an_unreported_site_could_hold_waits_for_it() -> None:
    sites = [site("a", "A100", 4), site("new", reported=False)]
    assert (
        never_fits_reason(pending(job_spec(gpus=8)), sites)
        == "connecting: 1 site has joined but not reported its GPUs yet (new)"
    )
    assert never_fits_reason(pending(job_spec(gpus=2)), sites) is None


# -- through a real broker ----------------------------------------------------------


@pytest.fixture
def fed(broker: RunningBroker) -> Iterator[tuple[RunningBroker, Caller]]:
    broker.institution("uchile", "CL")
    ana = broker.researcher("ana", "uchile")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    site.next("welcome")
    yield broker, ana
    site.close()


def submit(ana: Caller, spec: common_pb2.JobSpec, allow_unknown: bool = False) -> common_pb2.Job:
    request = job_pb2.SubmitJobRequest(spec=spec, allow_unknown=allow_unknown)
    return ana.jobs.SubmitJob(request, metadata=ana.md).job


def grpc_spec(
    gpus: int = 1, models: tuple[str, ...] = (), countries: tuple[str, ...] = (), data_country: str = ""
) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(
        entrypoint="python train.py",
        countries=countries,
        data_country=data_country,
        resources=common_pb2.Resources(gpus=gpus, gpu_models=models),
    )


def jobs_of(ana: Caller) -> list[common_pb2.Job]:
    return list(ana.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=ana.md).jobs)


@pytest.mark.parametrize(
    "spec", [grpc_spec(countries=("XX",)), grpc_spec(data_country="XX")], ids=["country", "data-country"]
)
def test_grpc_an_unassigned_country_is_invalid_even_with_allow_unknown(fed, spec: common_pb2.JobSpec) -> None:
    broker, ana = fed
    for allow in (False, True):
        with pytest.raises(grpc.RpcError) as err:
            submit(ana, spec, allow_unknown=allow)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'XX' is not an assigned ISO 3166-1 country code" in err.value.details()
    assert jobs_of(ana) == []


def test_grpc_a_model_typo_is_refused_and_nothing_is_stored(fed) -> None:
    broker, ana = fed
    with pytest.raises(grpc.RpcError) as err:
        submit(ana, grpc_spec(models=("A10O",)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == (
        "rejected: GPU model 'A10O': no site of the federation has it; did you mean A100? (known: A100) "
        "(submit with --allow-unknown to queue it anyway, for a site expected to join)"
    )
    assert jobs_of(ana) == []


def test_grpc_a_country_no_site_is_in_is_refused(fed) -> None:
    broker, ana = fed
    with pytest.raises(grpc.RpcError) as err:
        submit(ana, grpc_spec(countries=("CO",)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "country 'CO': no site of the federation is in it; did you mean CL?" in err.value.details()
    assert jobs_of(ana) == []


def test_grpc_allow_unknown_queues_it_for_a_site_expected_to_join(fed) -> None:
    broker, ana = fed
    job = submit(ana, grpc_spec(models=("H100",)), allow_unknown=True)
    assert job.state == common_pb2.JOB_STATE_PENDING
    waiting = eventually(
        lambda: (
            (j := ana.jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=ana.md)).reason.startswith("model")
            and j
        )
    )
    assert waiting.reason == "model: no site has a H100 GPU"  # it named no country


def test_cli_submit_refuses_a_typo_and_allow_unknown_queues_it(fed) -> None:
    broker, ana = fed
    refused = minga(broker, ana.token, "job", "submit", "--gpus", "1", "--gpu-model", "A10O", "--", "true")
    assert refused.exit_code == 1
    assert "did you mean A100?" in refused.output and "--allow-unknown" in refused.output
    bad = minga(broker, ana.token, "job", "submit", "--country", "XX", "--", "true")
    assert bad.exit_code == 2 and "not an assigned ISO 3166-1 country code" in bad.output
    assert jobs_of(ana) == []
    queued = minga(
        broker,
        ana.token,
        "job",
        "submit",
        "--gpus",
        "1",
        "--gpu-model",
        "A10O",
        "--allow-unknown",
        "-o",
        "json",
        "--",
        "true",
    )
    assert queued.exit_code == 0, queued.output
    assert [j.spec.resources.gpu_models for j in jobs_of(ana)] == [["A10O"]]
