"""`minga up`'s DevFederation, driven without signals: start, use, stop, re-run."""
from __future__ import annotations

import fcntl
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from cli import errors
from cli.client import BrokerClient
from cli.up import INSTITUTIONS, SAMPLE_JOB, DevFederation, UpConfig
from minga.v1 import common_pb2


def test_institutions_are_in_different_countries() -> None:
    countries = [country for _, _, country in INSTITUTIONS]
    assert len(set(countries)) == len(countries) and countries[0] == "CL"


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(errors.CliError, match="--sites 0: use 1 to 8"):
        DevFederation(UpConfig(sites=0, data_dir=tmp_path))


def test_one_up_per_data_dir(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    held = os.open(tmp_path / "up.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with pytest.raises(errors.CliError, match="another `minga up` is running"):
            DevFederation(UpConfig(data_dir=tmp_path)).start()
    finally:
        os.close(held)
    assert not (tmp_path / "broker.db").exists()  # nothing was started


def _run(client: BrokerClient, entrypoint: str) -> tuple[common_pb2.Job, str]:
    spec = common_pb2.JobSpec(entrypoint=entrypoint, resources=common_pb2.Resources(gpus=1))
    job = client.submit_job(spec).job
    logs = b"".join(c.data for c in client.job_logs(job.id, follow=True)).decode()
    return client.get_job(job.id), logs


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_up_runs_the_sample_job_stops_everything_and_reruns(tmp_path: Path) -> None:
    fed = DevFederation(UpConfig(gpus=2, sites=1, data_dir=tmp_path / "up"))
    info = fed.start()
    try:
        assert info.sites[0].name == "uchile-local" and info.sites[0].country == "CL"
        assert oct((tmp_path / "up" / "researcher-token").stat().st_mode & 0o777) == "0o600"
        dashboard = info.sites[0].ray_dashboard
        with BrokerClient(info.broker, info.token, Path(info.ca_file).read_bytes()) as client:
            job, logs = _run(client, SAMPLE_JOB)
            assert common_pb2.JobState.Name(job.state) == "JOB_STATE_SUCCEEDED", job
            assert logs.strip().splitlines()[-1] in ("0", "1")  # CUDA_VISIBLE_DEVICES of the one GPU
            _, which = _run(client, "python -c 'import sys; print(sys.executable)'")
            assert str(Path(sys.executable).parent) in which  # `python` in a job is minga's interpreter
    finally:
        fed.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{dashboard}/api/version", timeout=5)
    assert not _alive(info.sites[0].ray_pid)

    again = DevFederation(UpConfig(gpus=2, sites=1, data_dir=tmp_path / "up"))
    second = again.start()
    try:
        assert second.token == info.token  # the researcher's token survives a re-run
        with BrokerClient(second.broker, second.token, Path(second.ca_file).read_bytes()) as client:
            assert [s.name for s in client.list_sites()] == ["uchile-local"]  # the site re-used its credential
    finally:
        again.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
