"""`minga up`'s DevFederation, driven without signals: start, use, stop, re-run."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from minga.cli import config, errors
from minga.cli.client import BrokerClient
from minga.cli.up import INSTITUTIONS, LAST_ADDRESS, SAMPLE_JOB, DevFederation, UpConfig
from minga.common.domain import Job, JobSpec, JobState, Resources
from tests.environment import environment_without
from tests.fixtures_ray import pid_alive


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


def test_a_taken_port_moves_the_broker_and_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / LAST_ADDRESS).write_text(f"127.0.0.1:{port}\n")
        fed = DevFederation(UpConfig(data_dir=tmp_path))
        assert fed._stable_listen() == "127.0.0.1:0" and fed._moved_from == f"127.0.0.1:{port}"
    fed = DevFederation(UpConfig(data_dir=tmp_path))
    assert fed._stable_listen() == f"127.0.0.1:{port}" and not fed._moved_from  # free again: taken back
    assert (
        DevFederation(UpConfig(data_dir=tmp_path, listen="127.0.0.1:7"))._stable_listen() == "127.0.0.1:7"
    )  # an explicit --listen port wins


def test_up_leaves_a_login_config_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))
    fed = DevFederation(UpConfig(data_dir=tmp_path / "up"))
    fed.broker = SimpleNamespace(address="127.0.0.1:1234")
    assert fed._write_cli_config("mgu_up") == config.config_path()  # no config yet: written
    assert config.load_config()["token"] == "mgu_up"
    fed.broker.address = "127.0.0.1:5678"
    fed._write_cli_config("mgu_up")  # its own: refreshed
    assert config.load_config()["broker"] == "127.0.0.1:5678"
    config.save_config({"broker": "far:1", "token": "mgu_mine"})  # what `minga login` writes
    assert fed._write_cli_config("mgu_up") is None and config.load_config()["token"] == "mgu_mine"


def _run(client: BrokerClient, entrypoint: str) -> tuple[Job, str]:
    job = client.submit_job(JobSpec(entrypoint=entrypoint, resources=Resources(gpus=1))).what
    logs = b"".join(client.job_logs(job.id, follow=True)).decode()
    return client.get_job(job.id), logs


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_up_runs_the_sample_job_stops_everything_and_reruns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINGA_CONFIG_DIR", str(tmp_path / "config"))
    fed = DevFederation(UpConfig(gpus=2, sites=1, data_dir=tmp_path / "up", write_cli_config=True))
    info = fed.start()
    try:
        assert info.sites[0].name == "uchile-local" and info.sites[0].country == "CL"
        assert oct((tmp_path / "up" / "researcher-token").stat().st_mode & 0o777) == "0o600"
        dashboard = info.sites[0].ray_dashboard
        with BrokerClient(info.broker, info.token, Path(info.ca_file).read_bytes()) as client:
            job, logs = _run(client, SAMPLE_JOB)
            assert job.state == JobState.SUCCEEDED, job
            assert logs.strip().splitlines()[-1] in ("0", "1")  # CUDA_VISIBLE_DEVICES of the one GPU
            _, which = _run(client, "python -c 'import sys; print(sys.executable)'")
            assert str(Path(sys.executable).parent) in which  # `python` in a job is minga's interpreter
        with urllib.request.urlopen(info.metrics_url, timeout=10) as scraped:  # up turns metrics on
            text = scraped.read().decode()
            assert 'minga_jobs_finished_total{institution="uchile",state="SUCCEEDED"} 2.0' in text, text
        with httpx.Client(base_url=info.web_url, verify=info.ca_file) as web:  # so does the dashboard, over TLS
            assert web.post("/login", data={"token": info.token}).status_code == 303
            assert "uchile-local" in web.get("/sites").text
    finally:
        fed.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{dashboard}/api/version", timeout=5)
    assert not pid_alive(info.sites[0].ray_pid)

    again = DevFederation(UpConfig(gpus=2, sites=1, data_dir=tmp_path / "up", write_cli_config=True))
    second = again.start()
    try:
        assert second.token == info.token  # the researcher's token survives a re-run
        assert second.broker == info.broker and not second.moved_from  # so does an exported MINGA_BROKER
        assert json.loads(Path(second.cli_config).read_text())["broker"] == second.broker
        # A new terminal with no MINGA_* exported: plain `minga` finds the live broker through the config.
        env = environment_without("MINGA_")
        env.update(
            MINGA_CONFIG_DIR=str(tmp_path / "config"),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        )
        listed = subprocess.run(
            ["minga", "job", "list", "--all", "--output", "json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert len(json.loads(listed.stdout)) == 2
        with BrokerClient(second.broker, second.token, Path(second.ca_file).read_bytes()) as client:
            assert [s.site.name for s in client.list_sites()] == ["uchile-local"]  # the site re-used its credential
    finally:
        again.stop()


def test_the_paste_block_says_plain_minga_after_putting_it_on_path(capsys: pytest.CaptureFixture[str]) -> None:
    from minga.cli.commands.up import _announce
    from minga.cli.up import SiteInfo, UpInfo

    info = UpInfo(
        broker="127.0.0.1:5",
        researcher="ana",
        institution="uchile",
        token="mgu_x",
        admin_token_file="/d/admin-token",
        data_dir="/d",
        ca_file="/d/pki/ca.crt",
        sites=[SiteInfo("uchile-local", "uchile", "CL", "http://127.0.0.1:9", 1)],
        moved_from="127.0.0.1:4",
    )
    _announce(info, ". /v/bin/activate")
    out = capsys.readouterr().out
    pasted = [line.strip() for line in out.split("paste:\n", 1)[1].split("\n\n", 1)[0].splitlines()]
    assert pasted[0].startswith(". /v/bin/activate")
    assert "MINGA_CA=/d/pki/ca.crt" in pasted[1]
    assert all(line.startswith(("minga ", "export ")) for line in pasted[1:]), pasted  # no full paths
    assert "127.0.0.1:4) is taken" in out
