"""Where a run starts (issue 11, section 4), on a real local Ray head: in a fresh, empty,
private directory, never the directory the agent and Ray were started from, removed
when the run ends; with a working-dir package, in a private copy of it."""

from __future__ import annotations

import io
import json
import os
import shlex
import stat
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minga.agent.backend import JobSubmissionBackend, RunRequest
from minga.agent.local_ray import LocalRayHead
from minga.agent.packages import PackageCache, digest_of
from minga.common.domain import RunState
from tests.eventually import eventually

pytestmark = pytest.mark.ray

PY = shlex.quote(sys.executable)
SHOW = (
    "import json, os, stat\n"
    "here = os.getcwd()\n"
    "print('WHERE=' + json.dumps({'cwd': here, 'files': sorted(os.listdir('.')),\n"
    "                             'mode': stat.S_IMODE(os.stat(here).st_mode)}))\n"
)


@pytest.fixture
def show_script(tmp_path: Path) -> str:
    """A script, outside any run dir, that prints where it runs and what it sees there."""
    script = tmp_path / "show.py"
    script.write_text(SHOW)
    return f"{PY} {shlex.quote(str(script))}"


@pytest.fixture
def marker_in_agent_cwd() -> Iterator[str]:
    """A file in the directory this agent (and its Ray head) was started from, as a
    site token or a stray `train.py` would be; removed afterwards."""
    marker = Path.cwd() / f"agent-secret-{uuid.uuid4().hex[:8]}.token"
    marker.write_text("not for jobs\n")
    try:
        yield marker.name
    finally:
        marker.unlink()


def finished(ray: JobSubmissionBackend, run_id: str) -> RunState:
    eventually(lambda: (ray.status(run_id) or RunState.STARTING).terminal, timeout=90)
    state = ray.status(run_id)
    assert state is not None
    return state


def where(logs: str) -> dict:
    line = next(line for line in logs.splitlines() if line.startswith("WHERE="))
    return json.loads(line[len("WHERE=") :])


def test_a_run_starts_in_a_fresh_empty_private_dir_removed_when_it_ends(
    ray_head: LocalRayHead, show_script: str, marker_in_agent_cwd: str
) -> None:
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    run_id = f"minga-j-where-{uuid.uuid4().hex[:6]}"
    assert ray.submit(RunRequest(run_id=run_id, job_id="j-where", epoch=1, entrypoint=show_script))
    assert finished(ray, run_id) is RunState.SUCCEEDED, ray.logs(run_id)
    seen = where(ray.logs(run_id))
    assert seen["files"] == []  # empty: the agent's marker is not there
    assert seen["mode"] == 0o700  # private to the OS user
    assert Path(seen["cwd"]).resolve() != Path.cwd().resolve()
    assert not Path(seen["cwd"]).exists()  # removed when the run ended


def test_without_the_wrapper_a_job_would_see_the_agent_cwd(
    ray_head: LocalRayHead, show_script: str, marker_in_agent_cwd: str
) -> None:
    """The control: a plain Ray submit starts in the agent's directory and lists its
    files, which is what the private directory prevents (so the test above can fail)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard_url)
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    run_id = client.submit_job(entrypoint=show_script, submission_id=f"plain-{uuid.uuid4().hex[:6]}")
    assert finished(ray, run_id) is RunState.SUCCEEDED, ray.logs(run_id)
    assert marker_in_agent_cwd in where(ray.logs(run_id))["files"]


def test_a_stopped_run_removes_its_dir(ray_head: LocalRayHead) -> None:
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    run_id = f"minga-j-stopdir-{uuid.uuid4().hex[:6]}"
    assert ray.submit(RunRequest(run_id=run_id, job_id="j-stopdir", epoch=1, entrypoint='echo "DIR=$PWD"; sleep 120'))
    eventually(lambda: "DIR=" in ray.logs(run_id), timeout=90, what=lambda: f"DIR= in the logs: {ray.logs(run_id)!r}")
    run_dir = Path(next(line for line in ray.logs(run_id).splitlines() if line.startswith("DIR="))[4:])
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert ray.stop(run_id)
    assert finished(ray, run_id) is RunState.STOPPED
    eventually(lambda: not run_dir.exists(), timeout=30)


def test_a_package_run_gets_a_private_copy_its_outputs_do_not_reach_the_next_run(
    ray_head: LocalRayHead, tmp_path: Path, marker_in_agent_cwd: str
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train.py", SHOW + "open('out.txt', 'w').write('run output')\n")
    data = buf.getvalue()
    package = PackageCache(tmp_path / "cache", lambda _digest: data).get(digest_of(data))
    ray = JobSubmissionBackend(ray_head.dashboard_url)
    seen = []
    for attempt in (1, 2):
        run_id = f"minga-j-pkg-{uuid.uuid4().hex[:6]}"
        assert ray.submit(
            RunRequest(
                run_id=run_id, job_id="j-pkg", epoch=attempt, entrypoint="python train.py", working_dir=str(package)
            )
        )
        assert finished(ray, run_id) is RunState.SUCCEEDED, ray.logs(run_id)
        seen.append(where(ray.logs(run_id)))
    assert [s["files"] for s in seen] == [["train.py"], ["train.py"]]  # no out.txt from run 1
    assert all(s["mode"] == 0o700 for s in seen)
    assert seen[0]["cwd"] != seen[1]["cwd"]
    assert not any(Path(s["cwd"]).exists() for s in seen)
    assert sorted(os.listdir(package)) == ["train.py"]  # the cache is untouched
