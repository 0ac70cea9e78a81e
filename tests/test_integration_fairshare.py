"""Borrow and reclaim on real components: two institutions, each with its own real Ray
site; one borrows the other's idle GPUs, the owner submits and gets them back by
preemption, and the borrower's job is requeued and still completes."""

from __future__ import annotations

import pytest
from ray.job_submission import JobSubmissionClient

from minga.v1 import admin_pb2, common_pb2, job_pb2
from tests.fixtures_broker import Caller, start_broker
from tests.test_integration_ray import TERMINAL, running_agent, wait_state

pytestmark = pytest.mark.ray

SLEEPER = 'python -c \'import time; print("start", flush=True); time.sleep({s}); print("done")\''


def submit(who: Caller, gpus: int, model: str, seconds: int) -> str:
    spec = common_pb2.JobSpec(
        entrypoint=SLEEPER.format(s=seconds), resources=common_pb2.Resources(gpus=gpus, gpu_models=[model])
    )
    return who.jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), metadata=who.md).job.id


def test_owner_reclaims_borrowed_gpus_and_the_borrower_still_finishes(tmp_path, ray_head, ray_head_b):
    broker = start_broker(tmp_path)
    try:
        broker.institution("uchile", "CL")
        broker.institution("usp", "BR")
        admin = broker.admin
        admin.admin.SetPolicy(
            admin_pb2.SetPolicyRequest(policy=admin_pb2.Policy(preemption_grace_seconds=0.001)), metadata=admin.md
        )  # no grace: reclaim at once
        ana, bia = broker.researcher("ana", "uchile"), broker.researcher("bia", "usp")
        cl, br = broker.join("uchile", "dcc"), broker.join("usp", "ime")
        with running_agent(broker, cl, ray_head, "A100"), running_agent(broker, br, ray_head_b, "T4"):
            borrowed = submit(bia, 4, "A100", 6)  # usp has no A100: it borrows uchile's 4 idle ones
            first = wait_state(bia, borrowed, {common_pb2.JOB_STATE_RUNNING})
            assert first.site == "dcc"
            owned = submit(ana, 4, "A100", 2)  # the owner wants its GPUs back
            mine = wait_state(ana, owned, TERMINAL, timeout=120)
            assert mine.state == common_pb2.JOB_STATE_SUCCEEDED and mine.site == "dcc"
            back = wait_state(bia, borrowed, TERMINAL, timeout=120)
        assert back.state == common_pb2.JOB_STATE_SUCCEEDED, back.reason
        assert back.attempts == 2 and back.run_id != first.run_id  # requeued, then run again
        ray = JobSubmissionClient(ray_head.dashboard_url)
        assert ray.get_job_status(first.run_id).name == "STOPPED"  # the borrowed run was preempted on Ray
        # Ray admits a job's entrypoint only once its GPUs are free: the owner's job ran after
        # the preempted run ended (Ray's start_time is submission, so compare RUNNING instead).
        assert mine.started_at >= ray.get_job_info(first.run_id).end_time / 1000 - 1.0
    finally:
        broker.close()
