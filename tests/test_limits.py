"""Every field has a limit, and each violation is INVALID_ARGUMENT naming the field:
one row per limit, each sent through a real broker over real gRPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from minga.scheduler import validation as v
from minga.v1 import admin_pb2, common_pb2, job_pb2, site_pb2
from tests.fixtures_broker import Caller, RunningBroker, ScriptedSite, gpu_inventory


def spec(**fields: Any) -> common_pb2.JobSpec:
    """A valid spec, changed by `fields` (runtime_env / resources given as dicts of their own)."""
    env = fields.pop("runtime_env", {})
    res = fields.pop("resources", {})
    return common_pb2.JobSpec(
        entrypoint=fields.pop("entrypoint", "python train.py"),
        runtime_env=common_pb2.RuntimeEnv(**env),
        resources=common_pb2.Resources(**res),
        **fields,
    )


def many(n: int, size: int = 1) -> dict[str, str]:
    return {f"V{i}": "x" * size for i in range(n)}


# (case id, request, field named in the refusal)
SUBMITS: list[tuple[str, common_pb2.JobSpec, str]] = [
    ("empty entrypoint", spec(entrypoint="  "), "spec.entrypoint"),
    ("long entrypoint", spec(entrypoint="x" * (v.MAX_ENTRYPOINT + 1)), "spec.entrypoint"),
    ("long name", spec(name="n" * (v.MAX_NAME + 1)), "spec.name"),
    ("control character in name", spec(name="job\x1b[2J"), "spec.name"),
    ("too many gpus", spec(resources={"gpus": v.MAX_GPUS + 1}), "spec.resources.gpus"),
    ("negative gpus", spec(resources={"gpus": -1}), "spec.resources.gpus"),
    ("too many cpus", spec(resources={"cpus": 5000}), "spec.resources.cpus"),
    ("nan cpus", spec(resources={"cpus": float("nan")}), "spec.resources.cpus"),
    ("negative memory", spec(resources={"memory_mb": -5}), "spec.resources.memory_mb"),
    ("huge gpu memory", spec(resources={"min_gpu_memory_mb": 2**40}), "spec.resources.min_gpu_memory_mb"),
    (
        "too many gpu models",
        spec(resources={"gpu_models": [f"M{i}" for i in range(v.MAX_GPU_MODELS + 1)]}),
        "spec.resources.gpu_models",
    ),
    ("long gpu model", spec(resources={"gpu_models": ["M" * 65]}), "spec.resources.gpu_models"),
    ("bad country", spec(countries=["Chile"]), "spec.countries"),
    ("too many countries", spec(countries=["CL"] * (v.MAX_COUNTRIES + 1)), "spec.countries"),
    ("negative walltime", spec(walltime_seconds=-1), "spec.walltime_seconds"),
    ("huge walltime", spec(walltime_seconds=v.MAX_WALLTIME + 1), "spec.walltime_seconds"),
    ("huge max attempts", spec(max_attempts=v.MAX_ATTEMPTS + 1), "spec.max_attempts"),
    ("huge priority", spec(priority=10_000), "spec.priority"),
    ("too many env vars", spec(runtime_env={"env": many(v.MAX_ENV_VARS + 1)}), "spec.runtime_env.env"),
    ("bad env key", spec(runtime_env={"env": {"1BAD": "x"}}), "spec.runtime_env.env key"),
    ("long env value", spec(runtime_env={"env": {"K": "x" * (v.MAX_ENV_VALUE + 1)}}), "spec.runtime_env.env[K]"),
    ("NUL in env value", spec(runtime_env={"env": {"K": "a\0b"}}), "spec.runtime_env.env[K]"),
    ("env too large in all", spec(runtime_env={"env": many(40, 8000)}), "spec.runtime_env.env"),
    (
        "env and secrets over the count",
        spec(runtime_env={"env": many(100)}, secret_env={f"S{i}": "x" for i in range(30)}),
        "spec.secret_env",
    ),
    ("bad secret key", spec(secret_env={"BAD-KEY": "x"}), "spec.secret_env key"),
    ("long secret value", spec(secret_env={"S": "x" * (v.MAX_ENV_VALUE + 1)}), "spec.secret_env[S]"),
    ("key both plain and secret", spec(runtime_env={"env": {"K": "1"}}, secret_env={"K": "2"}), "spec.secret_env"),
    ("too many pip packages", spec(runtime_env={"pip": ["numpy"] * (v.MAX_PIP + 1)}), "spec.runtime_env.pip"),
    ("pip option smuggled", spec(runtime_env={"pip": ["--index-url=http://evil"]}), "spec.runtime_env.pip"),
    (
        "bad working dir digest",
        spec(runtime_env={"working_dir_digest": "md5:abc"}),
        "spec.runtime_env.working_dir_digest",
    ),
    ("long project", spec(project="p" * 300), "spec.project"),
    ("bad data country", spec(data_country="XYZ"), "spec.data_country"),
    ("too many labels", spec(site_labels={f"k{i}": "v" for i in range(33)}), "spec.site_labels"),
    ("long label", spec(site_labels={"k": "v" * 64}), "spec.site_labels"),
]


@pytest.fixture
def federation(broker: RunningBroker) -> tuple[RunningBroker, Caller]:
    broker.institution("uchile", "CL")
    return broker, broker.researcher("alice", "uchile")


def _refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        call()
    return exc.value


def test_each_job_spec_limit(federation: tuple[RunningBroker, Caller]) -> None:
    broker, alice = federation
    failures = []
    for case, bad, field in SUBMITS:
        err = _refused(lambda bad=bad: alice.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=bad), metadata=alice.md))
        if err.code() != grpc.StatusCode.INVALID_ARGUMENT or field not in (err.details() or ""):
            failures.append(f"{case}: {err.code().name} {err.details()!r}, expected {field}")
    assert not failures, "\n".join(failures)
    assert not alice.jobs.ListJobs(job_pb2.ListJobsRequest(all=True), metadata=alice.md).jobs


def test_each_request_limit(federation: tuple[RunningBroker, Caller]) -> None:
    broker, alice = federation
    admin = broker.admin
    admin_api, jobs_api = admin.admin, alice.jobs
    cases: list[tuple[str, Callable[[], Any], str]] = [
        (
            "idempotency key",
            lambda: jobs_api.SubmitJob(
                job_pb2.SubmitJobRequest(spec=spec(), idempotency_key="k" * 129), metadata=alice.md
            ),
            "idempotency_key",
        ),
        (
            "upload digest",
            lambda: jobs_api.UploadPackage(
                job_pb2.UploadPackageRequest(digest="sha256:zz", data=b"x"), metadata=alice.md
            ),
            "digest",
        ),
        (
            "package not a zip",
            lambda: jobs_api.UploadPackage(
                job_pb2.UploadPackageRequest(
                    digest="sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", data=b"x"
                ),
                metadata=alice.md,
            ),
            "package",
        ),
        (
            "log offset",
            lambda: next(iter(jobs_api.GetJobLogs(job_pb2.GetJobLogsRequest(job_id="j" * 5000), metadata=alice.md))),
            "job",
        ),
        (
            "institution slug",
            lambda: admin_api.AddInstitution(
                admin_pb2.AddInstitutionRequest(
                    institution=admin_pb2.Institution(slug="Bad Slug", name="x", country="CL")
                ),
                metadata=admin.md,
            ),
            "institution",
        ),
        (
            "institution name",
            lambda: admin_api.AddInstitution(
                admin_pb2.AddInstitutionRequest(
                    institution=admin_pb2.Institution(slug="ok", name="n" * 201, country="CL")
                ),
                metadata=admin.md,
            ),
            "name",
        ),
        (
            "institution country",
            lambda: admin_api.AddInstitution(
                admin_pb2.AddInstitutionRequest(institution=admin_pb2.Institution(slug="ok", name="ok", country="CHL")),
                metadata=admin.md,
            ),
            "country",
        ),
        (
            "institution weight",
            lambda: admin_api.AddInstitution(
                admin_pb2.AddInstitutionRequest(
                    institution=admin_pb2.Institution(slug="ok", name="ok", country="CL", weight=1e9)
                ),
                metadata=admin.md,
            ),
            "weight",
        ),
        (
            "user name",
            lambda: admin_api.AddUser(
                admin_pb2.AddUserRequest(name="x" * 100, institution="uchile", role=common_pb2.ROLE_RESEARCHER),
                metadata=admin.md,
            ),
            "user name",
        ),
        (
            "site name",
            lambda: admin_api.CreateSiteToken(
                admin_pb2.CreateSiteTokenRequest(institution="uchile", site="BAD!"), metadata=admin.md
            ),
            "site",
        ),
        (
            "join token ttl",
            lambda: admin_api.CreateSiteToken(
                admin_pb2.CreateSiteTokenRequest(institution="uchile", site="dcc", ttl_seconds=-5), metadata=admin.md
            ),
            "ttl",
        ),
        (
            "audit limit",
            lambda: admin_api.ListAudit(admin_pb2.ListAuditRequest(limit=10**9), metadata=admin.md),
            "limit",
        ),
        *[
            (
                f"policy {field}",
                lambda f=field, v=value: admin_api.SetPolicy(
                    admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(**{f: v})),
                    metadata=admin.md,
                ),
                field,
            )
            for field, value in (
                ("preemption_threshold", 1.0),
                ("preemption_cap", 0.0),
                ("preemption_notice_seconds", 3601.0),
                ("base_grant_fraction", 0.95),
                ("half_life_seconds", float("nan")),
                ("reservation_min_age_seconds", 8 * 86400.0),
            )
        ],
    ]
    failures = []
    for case, call, field in cases:
        err = _refused(call)
        expected = grpc.StatusCode.NOT_FOUND if case == "log offset" else grpc.StatusCode.INVALID_ARGUMENT
        if err.code() != expected or field not in (err.details() or ""):
            failures.append(f"{case}: {err.code().name} {err.details()!r}, expected {field}")
    assert not failures, "\n".join(failures)


SITE_MESSAGES: list[tuple[str, site_pb2.AgentMessage, str]] = [
    (
        "long report message",
        site_pb2.AgentMessage(
            run=site_pb2.RunReport(
                run_id="r-1", state=common_pb2.RUN_STATE_RUNNING, message="m" * (v.MAX_REPORT_MESSAGE + 1)
            )
        ),
        "run.message",
    ),
    (
        "long run id",
        site_pb2.AgentMessage(run=site_pb2.RunReport(run_id="r" * 200, state=common_pb2.RUN_STATE_RUNNING)),
        "run.run_id",
    ),
    (
        "big log chunk",
        site_pb2.AgentMessage(log=common_pb2.LogChunk(run_id="r-1", offset=0, data=b"x" * (v.MAX_LOG_CHUNK + 1))),
        "log.data",
    ),
    (
        "negative log offset",
        site_pb2.AgentMessage(log=common_pb2.LogChunk(run_id="r-1", offset=-1, data=b"x")),
        "log.offset",
    ),
    (
        "long health message",
        site_pb2.AgentMessage(health=site_pb2.Health(ray_down=True, message="h" * (v.MAX_REPORT_MESSAGE + 1))),
        "health.message",
    ),
    (
        "inventory pools",
        site_pb2.AgentMessage(
            inventory=site_pb2.InventoryUpdate(
                inventory=common_pb2.Inventory(
                    gpus=[common_pb2.GpuPool(model=f"M{i}", total=1) for i in range(v.MAX_POOLS + 1)]
                )
            )
        ),
        "inventory.gpus",
    ),
    (
        "inventory free over total",
        site_pb2.AgentMessage(
            inventory=site_pb2.InventoryUpdate(
                inventory=common_pb2.Inventory(gpus=[common_pb2.GpuPool(model="A100", total=1, free=5)])
            )
        ),
        "inventory.gpus[A100].free",
    ),
]


@pytest.mark.parametrize("case,message,field", SITE_MESSAGES, ids=[c[0] for c in SITE_MESSAGES])
def test_each_site_message_limit(broker: RunningBroker, case: str, message: site_pb2.AgentMessage, field: str) -> None:
    broker.institution("uchile", "CL")
    site = ScriptedSite(broker.address, broker.join("uchile", "dcc"), gpu_inventory("A100", 4))
    try:
        site.next("welcome")
        site.outbox.put(message)
        assert site.ended.wait(10), "the broker kept a stream that broke a limit"
        assert site.error is not None and site.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in site.error.details()
    finally:
        site.close()
