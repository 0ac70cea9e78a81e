"""Proto messages and domain values -> JSON dicts: stable snake_case keys, enum prefixes
stripped, ISO times or null."""

from __future__ import annotations

import json
from typing import Any

import pytest

from minga.cli import render
from minga.common.accounts import User
from minga.common.domain import GpuPool, Inventory, Role, Site, SiteState
from minga.common.quotas import QuotaRow
from minga.common.site_view import SiteView
from minga.common.wire.jobs import job_from_pb
from minga.v1 import common_pb2

JOB_KEYS = {
    "id",
    "name",
    "state",
    "owner",
    "institution",
    "project",
    "site",
    "country",
    "gpu_model",
    "gpus",
    "attempts",
    "failures",
    "infra_requeues",
    "max_attempts",
    "reason",
    "run_id",
    "submitted_at",
    "started_at",
    "finished_at",
    "last_preemption",
    "estimated_start",
    "dependencies",
    "carbon",
    "spec",
}


def _job(**overrides: Any) -> common_pb2.Job:
    spec = common_pb2.JobSpec(
        name="train",
        entrypoint="python train.py",
        resources=common_pb2.Resources(gpus=2, gpu_models=["A100", "H100"], min_gpu_memory_mb=40000),
        runtime_env=common_pb2.RuntimeEnv(env={"B": "2", "A": "1"}, pip=["numpy"]),
        countries=["CL", "BR"],
        walltime_seconds=3600,
        max_attempts=3,
    )
    fields: dict[str, Any] = dict(
        id="j-123",
        spec=spec,
        state=common_pb2.JOB_STATE_RUNNING,
        owner="ana",
        institution="uchile",
        site="uchile-dcc",
        country="CL",
        attempts=1,
        run_id="r-j-123-1",
        gpu_model="A100",
        submitted_at=1_700_000_000.25,
        started_at=1_700_000_010.0,
    )
    fields.update(overrides)
    return common_pb2.Job(**fields)


def test_job_to_dict() -> None:
    data = render.job_to_dict(job_from_pb(_job()))
    assert set(data) == JOB_KEYS
    assert data["state"] == "RUNNING"
    assert data["gpus"] == 2 and data["gpu_model"] == "A100" and data["max_attempts"] == 3
    assert data["submitted_at"] == "2023-11-14T22:13:20.250Z"
    assert data["started_at"] == "2023-11-14T22:13:30.000Z"
    assert data["finished_at"] is None
    assert data["spec"]["env"] == {"A": "1", "B": "2"}
    assert data["spec"]["countries"] == ["CL", "BR"]
    json.dumps(data)  # serialisable as is


def test_pending_job_has_nulls_not_empty_strings() -> None:
    data = render.job_to_dict(
        job_from_pb(common_pb2.Job(id="j-1", state=common_pb2.JOB_STATE_PENDING, reason="no site has 8 A100"))
    )
    assert data["site"] is None and data["run_id"] is None and data["gpu_model"] is None
    assert data["reason"] == "no site has 8 A100"
    assert data["max_attempts"] == 3  # 0 on the wire means the default of 3


def test_a_preempted_job_says_when_why_and_for_whom(capsys: pytest.CaptureFixture[str]) -> None:
    reason = (
        "fair share: usp holds 0 GPUs, below its fair share of 8.0; uchile holds 12, above its 8.0; preempted for j-9"
    )
    job = _job(
        state=common_pb2.JOB_STATE_PENDING,
        reason="waiting for 2 x A100: every matching site is busy",
        last_preemption=common_pb2.JobPreemption(
            at=1_700_000_000.0, kind="fair-share", beneficiary="usp", reason=reason
        ),
    )
    data = render.job_to_dict(job_from_pb(job))
    assert data["last_preemption"] == {
        "at": "2023-11-14T22:13:20.000Z",
        "kind": "fair-share",
        "beneficiary": "usp",
        "reason": reason,
    }
    json.dumps(data)
    assert render.job_to_dict(job_from_pb(_job()))["last_preemption"] is None
    render.job_detail(data, now=1_700_000_720.0)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    flat = " ".join(out.split())
    assert "preempted 12m ago (for usp, fair-share): fair share: usp holds 0 GPUs" in flat
    assert "preempted for j-9" in flat
    render.job_detail(render.job_to_dict(job_from_pb(_job())))
    assert "preempted" not in capsys.readouterr().out


def test_a_pending_job_shows_its_estimate_as_an_estimate_with_its_assumptions(capsys) -> None:  # type: ignore[no-untyped-def]
    assumptions = "running jobs end at their walltime (1 d when they have none); nothing new is submitted"
    job = _job(
        state=common_pb2.JOB_STATE_PENDING,
        estimate=common_pb2.StartEstimate(at=1_700_000_900.0, assumptions=assumptions),
    )
    data = render.job_to_dict(job_from_pb(job))
    assert data["estimated_start"] == {"at": "2023-11-14T22:28:20.000Z", "later_than": None, "assumptions": assumptions}
    render.job_detail(data, now=1_700_000_000.0)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    flat = " ".join(out.split())
    assert "estimate 2023-11-14T22:28:20.000Z (in about 15m), an estimate, not a promise" in flat
    assert f"assuming {assumptions}" in flat
    late = _job(state=common_pb2.JOB_STATE_PENDING, estimate=common_pb2.StartEstimate(later_than=1_700_604_800.0))
    render.job_detail(render.job_to_dict(job_from_pb(late)))
    assert "later than 2023-11-21T22:13:20.000Z" in " ".join(capsys.readouterr().out.split())
    render.job_detail(render.job_to_dict(job_from_pb(_job())))  # running: no estimate line
    assert "estimate" not in capsys.readouterr().out


def test_every_job_state_name_matches_design() -> None:
    states = [v for k, v in common_pb2.JobState.items() if not k.endswith("UNSPECIFIED")]
    names = {render.job_to_dict(job_from_pb(common_pb2.Job(state=v)))["state"] for v in states}
    assert names == {"PENDING", "LEASED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"}


def test_site_and_quota_and_user() -> None:
    site = Site(
        name="uchile-dcc",
        institution="uchile",
        country="CL",
        state=SiteState.CORDONED,
        connected=True,
        inventory=Inventory(gpus=(GpuPool(model="A100", memory_mb=40960, total=4, free=3),)),
    )
    data = render.site_to_dict(SiteView(site, gpus_in_use=(("A100", 1),)))
    assert data["state"] == "CORDONED"
    assert data["gpus"] == [
        {"model": "A100", "memory_mb": 40960, "total": 4, "in_use": 1, "free": 3, "largest_node": 0}
    ]
    row = QuotaRow(
        institution="uchile",
        country="CL",
        gpu_model="A100",
        owned=4,
        in_use=1,
        held=2,
        pending=8,
        weight=3.5,
        entitlement_pct=62.5,
        usage_pct=10.123,
        fairshare=0.87654,
        guarantee=4,
        borrowed=0,
        lent=1,
    )
    assert render.quota_to_dict(row) == {
        "institution": "uchile",
        "country": "CL",
        "gpu_model": "A100",
        "owned": 4,
        "in_use": 1,
        "held": 2,
        "pending": 8,
        "weight": 3.5,
        "entitlement_pct": 62.5,
        "usage_pct": 10.12,
        "fairshare": 0.8765,
        "guarantee": 4,
        "borrowed": 0,
        "lent": 1,
    }
    user = render.user_to_dict(User(name="ana", institution="uchile", role=Role.RESEARCHER, created_at=0.0))
    assert user == {"name": "ana", "institution": "uchile", "role": "researcher", "created_at": None}


def test_tables_fit_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [
        render.job_to_dict(job_from_pb(_job(reason="waiting for 2 x A100 in CL or BR: every matching site is busy")))
    ] * 3
    render.jobs_table(jobs, now=1_700_000_100.0)
    render.job_detail(jobs[0])
    site = render.site_to_dict(SiteView(Site(name="a-very-long-site-name-indeed", institution="uchile", country="CL")))
    render.sites_table([site])
    out = capsys.readouterr().out
    assert "j-123" in out and "RUNNING" in out
    assert max(len(line) for line in out.splitlines()) <= 80
