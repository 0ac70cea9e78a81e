"""An in-memory `RayBackend` for fast unit tests, with hooks to drive run states,
append to logs, simulate Ray being down, refusing submits for a while, or forgetting
its runs (a restarted head)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from minga.agent.backend import RUN_ID_PREFIX, RunInfo, RunRequest
from minga.common.domain import RunState


class FakeRayDownError(ConnectionError):
    """Raised by every call while the fake cluster is marked unreachable."""


@dataclass
class FakeRun:
    request: RunRequest
    state: RunState = RunState.STARTING
    message: str = ""
    log: str = ""


class FakeBackend:
    """Runs live in a dict; nothing ever runs. Thread-safe, like the real one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, FakeRun] = {}
        self.submissions: list[RunRequest] = []  # every accepted submit, in order
        self.stops: list[str] = []  # every stop call
        self.down = False
        self.submit_error: Exception | None = None  # raised by the next submit
        self.refusals: list[Exception] = []  # raised by the next submits, one each
        self.refused = 0  # submits refused so far
        self.stop_state = RunState.STOPPED  # what a stop moves a live run to

    # -- hooks for tests -----------------------------------------------------

    def add_run(self, request: RunRequest, state: RunState = RunState.RUNNING, log: str = "") -> None:
        """Pretend Ray already runs `request` (e.g. from before an agent restart)."""
        with self._lock:
            self._runs[request.run_id] = FakeRun(request, state, log=log)

    def set_state(self, run_id: str, state: RunState, message: str = "") -> None:
        with self._lock:
            run = self._runs[run_id]
            run.state, run.message = state, message

    def append_log(self, run_id: str, text: str) -> None:
        with self._lock:
            self._runs[run_id].log += text

    def refuse(self, times: int, error: Exception | None = None) -> None:
        """The next `times` submits are refused, by default as Ray does while its job
        agent is not ready; then submits are accepted again."""
        err = error or RuntimeError(
            "Request failed with status code 500: No available agent to submit job, please try again later."
        )
        with self._lock:
            self.refusals.extend([err] * times)

    def forget_all(self) -> None:
        """A restarted Ray head: it knows none of the runs it had."""
        with self._lock:
            self._runs.clear()

    def run(self, run_id: str) -> FakeRun | None:
        with self._lock:
            return self._runs.get(run_id)

    # -- RayBackend ------------------------------------------------------------

    def _check(self) -> None:
        if self.down:
            raise FakeRayDownError("fake Ray cluster is down")

    def submit(self, run: RunRequest) -> bool:
        self._check()
        with self._lock:
            if self.submit_error is not None:
                err, self.submit_error = self.submit_error, None
                raise err
            if self.refusals:
                self.refused += 1
                raise self.refusals.pop(0)
            if run.run_id in self._runs:
                return False
            self._runs[run.run_id] = FakeRun(run)
            self.submissions.append(run)
            return True

    def status(self, run_id: str) -> RunState | None:
        found = self.info(run_id)
        return None if found is None else found.state

    def info(self, run_id: str) -> RunInfo | None:
        self._check()
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else self._info(run)

    def stop(self, run_id: str) -> bool:
        self._check()
        with self._lock:
            self.stops.append(run_id)
            run = self._runs.get(run_id)
            if run is None or run.state.terminal:
                return False
            run.state = self.stop_state
            return True

    def logs(self, run_id: str) -> str:
        self._check()
        with self._lock:
            run = self._runs.get(run_id)
            return "" if run is None else run.log

    def list_runs(self) -> list[RunInfo]:
        self._check()
        with self._lock:
            return [self._info(r) for r in self._runs.values() if r.request.run_id.startswith(RUN_ID_PREFIX)]

    def reachable(self) -> bool:
        return not self.down

    @staticmethod
    def _info(run: FakeRun) -> RunInfo:
        req = run.request
        return RunInfo(req.run_id, req.job_id, req.epoch, run.state, run.message)
