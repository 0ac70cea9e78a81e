"""A job's log as server-sent events (the job page's live follow).

`log` events carry escaped text to append, `state` a change of the job's state, `end` its
end. Each `log` event's id is `run:offset`: a reconnecting browser sends it back
(Last-Event-ID) and resumes there, so nothing shows twice. A new attempt's log starts afresh.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from minga.common.domain import InvalidArgument, Job, MingaError, Principal
from minga.scheduler.core import Core
from minga.scheduler.service import jobs
from minga.scheduler.store.base import StoreUnavailable
from minga.scheduler.web import reads

POLL_SECONDS = 1.0
KEEPALIVE_POLLS = 15  # an SSE comment this often keeps proxies from closing a quiet stream


def resume_point(request: Request) -> tuple[str, int]:
    """(run id, offset) to follow from: the browser's Last-Event-ID, else the page's query."""
    last = request.headers.get("last-event-id", "")
    if last:
        run, _, offset = last.rpartition(":")
    else:
        run, offset = request.query_params.get("run", ""), request.query_params.get("offset", "0")
    if not offset.isdigit() or len(offset) > 15 or len(run) > 256:
        raise InvalidArgument("offset must be a byte count, run a run id")
    return run, int(offset)


async def follow(
    request: Request, core: Core, caller: Principal, job_id: str, run: str, offset: int
) -> AsyncIterator[str]:
    """Events until the job ends or the browser goes away, polling the store each second."""
    quiet, state = 0, None
    while not await request.is_disconnected():
        try:
            job, chunks = await run_in_threadpool(_read, core, caller, job_id, run, offset)
        except (MingaError, StoreUnavailable) as exc:
            yield event("end", f"<p class='log-end'>Stopped following: {html.escape(str(exc))}</p>")
            return
        for run_id, start, data in chunks:
            if run_id != run:
                if run:
                    yield event("log", f"\n--- a new attempt: run {html.escape(run_id)} ---\n", f"{run_id}:0")
                run = run_id
            offset = start + len(data)
            yield event("log", html.escape(data.decode(errors="replace")), f"{run}:{offset}")
            quiet = 0
        if job.state != state:  # the page refreshes its facts and runs
            state = job.state
            yield event("state", html.escape(state.value))
        if job.state.terminal:
            yield event("end", f"<p class='log-end'>The job ended: {html.escape(job.state.value)}.</p>")
            return
        quiet += 1
        if quiet >= KEEPALIVE_POLLS:
            quiet = 0
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_SECONDS)


Chunk = tuple[str, int, bytes]  # (run id, offset, bytes)


def _read(core: Core, caller: Principal, job_id: str, run: str, offset: int) -> tuple[Job, list[Chunk]]:
    """The job now, and its log after (run, offset); a new run's log from its start."""
    job = jobs.get_job(core, caller, job_id)
    start = offset if job.run_id == run else 0
    return job, list(reads.job_log(core, caller, job_id, start))


def event(name: str, data: str, event_id: str = "") -> str:
    """One SSE event; each line of `data` a `data:` line."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (f"id: {event_id}\n" if event_id else "") + f"event: {name}\n{lines}\n"
