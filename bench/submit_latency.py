"""Submit→RUNNING and submit→SUCCEEDED latency: minga against Ray directly.

One local Ray head with logical GPUs serves both paths. minga's path is the real
deployment: `minga broker serve` and `minga agent run` as separate processes, the
job submitted over gRPC and followed with GetJob. The baseline submits the same
trivial job straight to the same cluster with JobSubmissionClient. Rounds are
interleaved (direct, minga, direct, ...) so machine noise hits both alike.
Prints medians, the overhead and the ratio. Target: overhead ≤ 150 ms at the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from ray.job_submission import JobStatus, JobSubmissionClient

from minga.agent.local_ray import LocalRayHead
from minga.agent.ports import free_ports
from minga.v1 import admin_pb2, admin_pb2_grpc, common_pb2, job_pb2, job_pb2_grpc

ENTRYPOINT = "python -c \"print('hello')\""
POLL = 0.02  # both paths poll alike; 5 ms polling of the broker alone costs a core here
TARGET_MS = 150.0
MINGA = str(Path(sys.executable).parent / "minga")


def wait_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    raise SystemExit(f"broker did not write {path} in {timeout:.0f} s")


def wait_site_ready(admin: admin_pb2_grpc.AdminServiceStub, md: list[tuple[str, str]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sites = admin.ListSites(admin_pb2.ListSitesRequest(), metadata=md).sites
        if any(s.connected and s.inventory.gpus for s in sites):
            return
        time.sleep(0.1)
    raise SystemExit(f"the agent did not connect with its GPUs in {timeout:.0f} s")


Round = tuple[float, float, float]  # (to RUNNING, to SUCCEEDED, until Ray accepted the job)


def accepted_after(client: JobSubmissionClient, submission_id: str, wall_t0: float) -> float:
    """How long after the submit Ray created the job: the hand-off cost of each path."""
    return client.get_job_info(submission_id).start_time / 1000.0 - wall_t0


def direct_round(client: JobSubmissionClient) -> Round:
    wall_t0, t0 = time.time(), time.perf_counter()
    sid = client.submit_job(
        entrypoint=ENTRYPOINT,
        submission_id=f"direct-{uuid.uuid4().hex[:8]}",
        entrypoint_num_gpus=1,
        entrypoint_num_cpus=1,
    )
    running = None
    while True:
        status = client.get_job_status(sid)
        if status in (JobStatus.RUNNING,) and running is None:
            running = time.perf_counter() - t0
        if status.is_terminal():
            done = time.perf_counter() - t0
            if status != JobStatus.SUCCEEDED:
                raise SystemExit(f"direct job {sid} ended {status}")
            return (running or done), done, accepted_after(client, sid, wall_t0)
        time.sleep(POLL)


def minga_round(jobs: job_pb2_grpc.JobServiceStub, md: list[tuple[str, str]], client: JobSubmissionClient) -> Round:
    wall_t0, t0 = time.time(), time.perf_counter()
    spec = common_pb2.JobSpec(entrypoint=ENTRYPOINT, resources=common_pb2.Resources(gpus=1, cpus=1))
    job = jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec, idempotency_key=uuid.uuid4().hex), metadata=md).job
    running = None
    while True:
        current = jobs.GetJob(job_pb2.GetJobRequest(job_id=job.id), metadata=md)
        state = current.state
        if state == common_pb2.JOB_STATE_RUNNING and running is None:
            running = time.perf_counter() - t0
        if state in (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED):
            done = time.perf_counter() - t0
            if state != common_pb2.JOB_STATE_SUCCEEDED:
                raise SystemExit(f"minga job {job.id} ended {common_pb2.JobState.Name(state)}")
            return (running or done), done, accepted_after(client, current.run_id, wall_t0)
        time.sleep(POLL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minga-bench-"))
    env = dict(os.environ, MINGA_DATA_DIR=str(work / "data"), MINGA_CONFIG_DIR=str(work / "config"))
    procs: list[subprocess.Popen[bytes]] = []
    with LocalRayHead(gpus=2, gpu_model="A100") as head:
        try:
            (port,) = free_ports(1)
            address = f"127.0.0.1:{port}"
            token_file = work / "admin-token"
            procs.append(
                subprocess.Popen(
                    [
                        MINGA,
                        "broker",
                        "serve",
                        "--listen",
                        address,
                        "--db",
                        f"sqlite:///{work}/broker.db",
                        "--admin-token-file",
                        str(token_file),
                    ],
                    env=env,
                    stdout=open(work / "broker.log", "wb"),  # noqa: SIM115 - the child holds it; closed when it exits
                    stderr=subprocess.STDOUT,
                )
            )
            admin_md = [("authorization", f"Bearer {wait_file(token_file)}")]
            channel = grpc.insecure_channel(address)
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            admin.AddInstitution(
                admin_pb2.AddInstitutionRequest(
                    institution=admin_pb2.Institution(slug="bench", name="Bench", country="CL")
                ),
                metadata=admin_md,
            )
            user = admin.AddUser(
                admin_pb2.AddUserRequest(name="bench", institution="bench", role=common_pb2.ROLE_RESEARCHER),
                metadata=admin_md,
            )
            join = admin.CreateSiteToken(
                admin_pb2.CreateSiteTokenRequest(institution="bench", site="s1"), metadata=admin_md
            )
            cred = work / "site.json"
            subprocess.run(
                [MINGA, "site", "join", "--broker", address, "--token", join.token, "--credential", str(cred)],
                env=env,
                check=True,
                capture_output=True,
            )
            procs.append(
                subprocess.Popen(
                    [
                        MINGA,
                        "agent",
                        "run",
                        "--ray-address",
                        head.dashboard_url,
                        "--gpu-model",
                        "A100",
                        "--credential",
                        str(cred),
                    ],
                    env=env,
                    stdout=open(work / "agent.log", "wb"),  # noqa: SIM115 - the child holds it; closed when it exits
                    stderr=subprocess.STDOUT,
                )
            )
            wait_site_ready(admin, admin_md)
            md = [("authorization", f"Bearer {user.token}")]
            jobs = job_pb2_grpc.JobServiceStub(channel)
            client = JobSubmissionClient(head.dashboard_url)
            minga_round(jobs, md, client)  # warm-up: the agent connects, Ray warms its worker pool
            direct_round(client)
            direct, through = [], []
            for i in range(args.rounds):
                direct.append(direct_round(client))
                through.append(minga_round(jobs, md, client))
                print(
                    f"round {i + 1:2d}: direct {direct[-1][0] * 1e3:6.0f}/{direct[-1][1] * 1e3:6.0f} ms"
                    f"   minga {through[-1][0] * 1e3:6.0f}/{through[-1][1] * 1e3:6.0f} ms  (running/succeeded)"
                )
            report(direct, through)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def report(direct: list[Round], through: list[Round]) -> None:
    print(f"\n{'':22s}{'direct Ray':>12s}{'minga':>12s}{'overhead':>12s}{'ratio':>8s}")
    worst = 0.0
    for idx, label in ((0, "submit→RUNNING"), (1, "submit→SUCCEEDED")):
        d = statistics.median(r[idx] for r in direct) * 1e3
        m = statistics.median(r[idx] for r in through) * 1e3
        worst = max(worst, m - d)
        print(f"{label:22s}{d:10.0f}ms{m:10.0f}ms{m - d:+10.0f}ms{m / d:8.2f}")
    d_acc = statistics.median(r[2] for r in direct) * 1e3
    m_acc = statistics.median(r[2] for r in through) * 1e3
    print(
        f"{'submit→Ray has it':22s}{d_acc:10.0f}ms{m_acc:10.0f}ms{m_acc - d_acc:+10.0f}ms"
        "   (broker + cycle + stream + agent hand-off)"
    )
    verdict = "meets" if worst <= TARGET_MS else "MISSES"
    print(f"\nmedian overhead {worst:.0f} ms: {verdict} the target of ≤ {TARGET_MS:.0f} ms over direct Ray")


if __name__ == "__main__":
    main()
