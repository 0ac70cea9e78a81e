"""Reconciles the runs the broker asked this site for with what Ray actually does,
and turns every change into messages for the broker.

Ray is the source of truth for which runs exist (the run id is the Ray
submission_id), so a StartRun is submitted at most once however often it comes,
and a restarted agent finds its runs again. For each tracked run the reconciler
remembers:

- `state`: the last state it queued a report for (to report only changes);
- `log_offset`: how many log bytes it queued (log chunks carry byte offsets);
- `delivered`: the last reported state the outbox counts as delivered.

A run's final log chunks are queued before its terminal report, so the broker
has the whole log when the job ends. Hello reports each tracked run in its
*delivered* state, never a newer one, so the queued messages that follow Hello
replay the rest in order, logs before the terminal report.

A submit Ray refuses for a moment (agent/refusals.py) is tried again on later ticks,
with a capped, jittered backoff on the injected clock; only when the tries are spent
does the start count as failed (an infrastructure failure, requeued by the broker
without touching the job's max_attempts), and the site says Ray keeps refusing
(`on_refusing`: DEGRADED until a cool-off passes). A run this agent submitted once is
never submitted again: if Ray forgot it (a restarted head), it is reported UNKNOWN, so
the broker requeues it as a new attempt with a new run id (agent/submitted.py keeps that
record bounded).

Not thread-safe for concurrent callers of `start_run`/`stop_run`/`tick` (the
session calls those from one thread); `hello_runs` and `on_delivered` may be
called from other threads.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from minga.agent.backend import RayBackend, RunInfo, RunRequest
from minga.agent.metrics import SUBMITTING, AgentMetrics
from minga.agent.outbox import Outbox
from minga.agent.packages import PackageCache
from minga.agent.refusals import (
    REFUSING_COOLOFF_SECONDS,
    START_TRIES,
    PendingStart,
    is_transient,
    retry_delay,
)
from minga.agent.submitted import SubmittedRuns
from minga.common.clock import Clock
from minga.common.domain import RunState
from minga.common.site_messages import RunReport
from minga.common.wire.enums import run_state_from_pb
from minga.common.wire.runs import run_report_to_pb
from minga.common.wire.stream import log_chunks_to_pb, refusing_to_pb, run_update_to_pb
from minga.v1 import site_pb2

log = logging.getLogger(__name__)


def run_request(start: site_pb2.StartRun, working_dir: str | None = None) -> RunRequest:
    """What to submit to Ray for a StartRun; `working_dir` is the unpacked package."""
    spec = start.spec
    res = spec.resources
    return RunRequest(
        run_id=start.run_id,
        job_id=start.job_id,
        epoch=start.epoch,
        entrypoint=spec.entrypoint,
        gpus=res.gpus,
        cpus=res.cpus if res.cpus > 0 else 1.0,
        memory_mb=res.memory_mb,
        gpu_model=start.gpu_model,
        working_dir=working_dir,
        pip=tuple(spec.runtime_env.pip),
        env=dict(spec.runtime_env.env),
        secret_env=dict(spec.secret_env),
        notice_seconds=start.notice_seconds,
        array_job_id=start.array_job_id,
        array_index=start.array_index,
    )


def _report_of(info: RunInfo) -> site_pb2.RunReport:
    """The report of a run as Ray knows it."""
    return run_report_to_pb(
        RunReport(info.run_id, info.state, info.message, info.infrastructure), info.job_id, info.epoch
    )


@dataclass
class TrackedRun:
    run_id: str
    job_id: str
    epoch: int
    state: RunState | None = None  # last state queued for the broker
    delivered: RunState | None = None  # last state the broker is assumed to have
    log_offset: int = 0  # log bytes queued so far
    next_log_poll: float = 0.0
    finished: bool = False  # the last report (terminal or UNKNOWN) is queued
    received_at: float = 0.0  # when its StartRun came (0: adopted); for the start-time histogram


class Reconciler:
    def __init__(
        self,
        backend: RayBackend,
        outbox: Outbox,
        clock: Clock,
        packages: PackageCache | None = None,
        log_seconds: float = 0.5,
        on_refusing: Callable[[str | None], None] | None = None,
        rng: random.Random | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics or AgentMetrics()
        self.outbox = outbox
        self.packages = packages
        self.log_seconds = log_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._runs: dict[str, TrackedRun] = {}
        self._ray_failing = False
        self._submitted = SubmittedRuns()  # runs this agent had Ray accept (or found there)
        self._pending: dict[str, tuple[site_pb2.StartRun, PendingStart]] = {}  # refused, to retry
        self._rng = rng or random.Random()
        self.on_refusing = on_refusing or (lambda reason: self.outbox.put(refusing_to_pb(reason)))
        self.refusing: str | None = None  # why the site counts as refusing new runs
        self._refusing_until = 0.0

    # -- what the session calls ---------------------------------------------

    def hello_runs(self) -> list[site_pb2.RunReport]:
        """The runs for a Hello: every minga run Ray knows. Raises if Ray does not
        answer: a Hello that left runs out would make the broker think them lost."""
        reports = []
        for info in self.backend.list_runs():
            with self._lock:
                run = self._runs.get(info.run_id)
                if run is None and not info.state.terminal:
                    run = self._adopt(info)
                if run is None:
                    reports.append(_report_of(info))
                else:
                    state = run.delivered or RunState.STARTING
                    reports.append(run_report_to_pb(RunReport(run.run_id, state), run.job_id, run.epoch))
        return reports

    def start_run(self, start: site_pb2.StartRun) -> None:
        """Submit the run to Ray unless Ray already has it; report STARTING, or FAILED once
        Ray's refusals are past retrying. A run this agent submitted before and Ray no
        longer knows is reported UNKNOWN, never submitted again."""
        with self._lock:
            if start.run_id in self._runs:
                log.info("run %s already tracked; StartRun ignored", start.run_id)
                return
            run = TrackedRun(start.run_id, start.job_id, start.epoch, received_at=self._clock.now())
            self._runs[start.run_id] = run
            seen = self._submitted.seen(start.run_id, start.job_id, start.epoch)
        if seen:
            self._resent(run)
        else:
            self._try_start(run, start, 0)

    def _resent(self, run: TrackedRun) -> None:
        try:
            known = self.backend.info(run.run_id) is not None
        except Exception:  # noqa: BLE001 - unsure: still never submit it twice
            known = False
        if not known:
            self._queue_report(
                run,
                RunState.UNKNOWN,
                "this site's Ray cluster no longer knows the run "
                "(it was submitted before); not submitting it again under the same id",
            )
        # Known: the next tick reports its actual state.

    def _try_start(self, run: TrackedRun, start: site_pb2.StartRun, refused: int) -> None:
        """One submit; a transient refusal waits for a later tick, up to START_TRIES."""
        try:
            working_dir = self._working_dir(start)
            with self.metrics.submit_seconds.time():
                submitted = self.backend.submit(run_request(start, working_dir))
        except Exception as err:  # noqa: BLE001 - any failure to start is the run's failure
            self._refused(run, start, refused + 1, err)
            return
        with self._lock:
            self._submitted.add(run.run_id)
        if submitted:
            self._queue_report(run, RunState.STARTING, "submitted to Ray")
        # Already on Ray (a repeated StartRun, or one from before a restart):
        # the next tick reports its actual state.

    def _refused(self, run: TrackedRun, start: site_pb2.StartRun, tries: int, err: Exception) -> None:
        transient = is_transient(err)
        if transient and tries < START_TRIES:
            delay = retry_delay(tries, self._rng)
            log.warning(
                "Ray refused run %s (%s); try %d of %d in %.1f s", run.run_id, err, tries + 1, START_TRIES, delay
            )
            with self._lock:
                self._pending[run.run_id] = (start, PendingStart(tries, self._clock.now() + delay, str(err)))
            return
        log.warning("could not start run %s: %s", run.run_id, err)
        if transient:
            self._set_refusing(f"Ray refused {tries} submits in a row: {err}")
            message = f"could not start on Ray after {tries} tries: {err}"
        else:
            message = f"could not start on Ray: {err}"
        # A 4xx is Ray refusing the run itself (e.g. a bad runtime env): the user's.
        users = "status code 4" in str(err)
        self._queue_report(run, RunState.FAILED, message, infrastructure=not users)

    def _retry_due(self) -> None:
        """Try again every refused start whose wait is over; end a refusal cool-off."""
        now = self._clock.now()
        with self._lock:
            due = [(rid, start, p) for rid, (start, p) in self._pending.items() if p.next_at <= now]
            for rid, _, _ in due:
                del self._pending[rid]
        for rid, start, pending in due:
            run = self._runs.get(rid)
            if run is not None and not run.finished:
                self._try_start(run, start, pending.tries)
        if self.refusing is not None and now >= self._refusing_until:
            self.refusing = None
            log.info("trying this site's Ray again after its refusals")
            self.on_refusing(None)

    def _set_refusing(self, reason: str) -> None:
        self._refusing_until = self._clock.now() + REFUSING_COOLOFF_SECONDS
        if self.refusing is None:
            log.error("this site's Ray keeps refusing new runs (%s): the site counts as DEGRADED", reason)
            self.refusing = reason
            self.on_refusing(reason)

    def stop_run(self, stop: site_pb2.StopRun) -> None:
        """Ask Ray to stop the run; the next tick reports the state it reaches."""
        log.info("stopping run %s (%s)", stop.run_id, stop.reason or "no reason given")
        with self._lock:
            waiting = self._pending.pop(stop.run_id, None)
            run = self._runs.get(stop.run_id)
        if waiting is not None and run is not None:
            self._queue_report(run, RunState.STOPPED, "stopped before Ray accepted it")
            return
        try:
            self.backend.stop(stop.run_id)
            info = self.backend.info(stop.run_id)
        except Exception as err:  # noqa: BLE001 - Ray's clients raise many types; the stop is retried
            log.warning("could not stop run %s: %s", stop.run_id, err)
            return
        with self._lock:
            run = self._runs.get(stop.run_id)
            if run is not None:
                return
            if info is None:
                self.outbox.put(
                    run_update_to_pb(
                        RunReport(stop.run_id, RunState.UNKNOWN, "this site's Ray cluster does not know the run"), "", 0
                    )
                )
                return
            # Not tracked (e.g. finished and delivered long ago): report it afresh.
            self._runs[info.run_id] = TrackedRun(info.run_id, info.job_id, info.epoch)

    def runs_by_state(self) -> dict[str, int]:
        """How many tracked runs are in each state (SUBMITTING: not accepted by Ray yet)."""
        with self._lock:
            return dict(Counter(r.state.value if r.state else SUBMITTING for r in self._runs.values()))

    def tick(self) -> None:
        """Retry refused starts that are due, then poll Ray once for every live tracked
        run; queue logs and state changes."""
        self._retry_due()
        with self._lock:
            live = [r for r in self._runs.values() if not r.finished and r.run_id not in self._pending]
        for run in live:
            try:
                self._poll(run)
            except Exception as err:  # noqa: BLE001 - Ray's clients raise many types; runs keep their state
                if not self._ray_failing:
                    log.warning("cannot poll Ray (%s); runs keep their last reported state", err)
                self._ray_failing = True
                return
        if self._ray_failing and live:
            log.info("Ray answers again")
        self._ray_failing = False

    def on_delivered(self, msg: site_pb2.AgentMessage) -> None:
        """Outbox callback: `msg` counts as delivered; forget runs that are done."""
        if msg.WhichOneof("body") != "run":
            return
        state = run_state_from_pb(msg.run.state)
        with self._lock:
            run = self._runs.get(msg.run.run_id)
            if run is None:
                return
            run.delivered = state
            if run.finished and (state.terminal or state is RunState.UNKNOWN):
                del self._runs[run.run_id]
                self._submitted.ended(run.run_id, run.job_id, run.epoch)

    # -- internals --------------------------------------------------------------

    def _adopt(self, info: RunInfo) -> TrackedRun:
        """Track a live run found on Ray (e.g. after an agent restart); its Hello
        report stands for the delivered state, its log is sent from the start."""
        run = TrackedRun(info.run_id, info.job_id, info.epoch, state=info.state, delivered=info.state)
        self._runs[info.run_id] = run
        self._submitted.add(info.run_id)
        log.info(
            "recovered run %s of job %s (epoch %d) in state %s", info.run_id, info.job_id, info.epoch, info.state.value
        )
        return run

    def _working_dir(self, start: site_pb2.StartRun) -> str | None:
        digest = start.spec.runtime_env.working_dir_digest
        if not digest:
            return None
        if self.packages is None:
            raise RuntimeError("this agent has no package cache for working dirs")
        return str(self.packages.get(digest))

    def _poll(self, run: TrackedRun) -> None:
        info = self.backend.info(run.run_id)
        if info is not None:
            with self._lock:
                self._submitted.add(run.run_id)
        if info is None:
            if run.state is None:
                return  # a submit in flight on the session thread
            self._flush_logs(run)
            self._queue_report(run, RunState.UNKNOWN, "the run vanished from this site's Ray cluster")
            return
        now = self._clock.now()
        if info.state.terminal or now >= run.next_log_poll:
            # The last read after the run ended: the final chunks go before the report.
            self._flush_logs(run)
            run.next_log_poll = now + self.log_seconds
        if info.state != run.state:
            self._queue_report(run, info.state, info.message, info.infrastructure)

    def _flush_logs(self, run: TrackedRun) -> None:
        data = self.backend.logs(run.run_id).encode("utf-8", errors="replace")
        if len(data) <= run.log_offset:
            return
        for msg in log_chunks_to_pb(run.run_id, run.log_offset, data[run.log_offset :]):
            self.outbox.put(msg)
        run.log_offset = len(data)

    def _queue_report(self, run: TrackedRun, state: RunState, message: str = "", infrastructure: bool = False) -> None:
        with self._lock:
            if state is RunState.RUNNING and run.state is not RunState.RUNNING and run.received_at:
                self.metrics.start_seconds.observe(max(0.0, self._clock.now() - run.received_at))
            run.state = state
            run.finished = state.terminal or state is RunState.UNKNOWN
            self.outbox.put(
                run_update_to_pb(RunReport(run.run_id, state, message, infrastructure), run.job_id, run.epoch)
            )
        log.info("run %s is %s%s", run.run_id, state.value, f": {message}" if message else "")
