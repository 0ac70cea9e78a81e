"""Job arrays in the store: one bulk insert per array, and the tasks summed per array.

Each task is an ordinary job row (`array_id`, `array_index`, `array_limit` set), so the
cycle, the ledger and every job command treat it like any job. The idempotency key sits
on the first task's row: the (owner, key) unique constraint then covers arrays too.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from minga.common.domain import LIVE_JOB_STATES, TERMINAL_JOB_STATES, ArraySummary, Job, JobState
from minga.common.states import transition
from minga.common.webhooks import EVENT_ENDED
from minga.scheduler.store.base import Database, job_from_row
from minga.scheduler.store.changes import note_jobs
from minga.scheduler.store.dependencies import insert_dependencies
from minga.scheduler.store.json_columns import secrets_to_json, spec_to_json
from minga.scheduler.store.models import JobRow, table_of
from minga.scheduler.store.webhook_outbox import record as record_events

_LIVE = [s.value for s in LIVE_JOB_STATES]
_TERMINAL = [s.value for s in TERMINAL_JOB_STATES]


class ArraysRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(self, first: Job, indices: Sequence[int], limit: int, idempotency_key: str | None) -> tuple[str, bool]:
        """Insert every task of an array in one transaction and one executemany; or, if
        (owner, key) was used before, insert nothing and return that earlier job's array
        id (or job id, for a plain job). `first` is the first task; the others differ
        only in id and index. Returns (array id, created)."""
        array_id = first.array_id
        template: dict[str, Any] = dict(  # the columns left out take their defaults
            owner=first.owner,
            institution=first.institution,
            spec_json=spec_to_json(first.spec),
            secret_env_json=secrets_to_json(first.spec),
            state=first.state.value,
            reason=first.reason,
            submitted_at=first.submitted_at,
            updated_at=first.submitted_at,
            project=first.spec.project,
            attempts=0,
            failures=0,
            not_before=0.0,
            preempted_at=0.0,
            preempted_kind="",
            preempted_for="",
            preempted_reason="",
            site="",
            country="",
            run_id="",
            gpu_model="",
            started_at=0.0,
            finished_at=0.0,
            array_id=array_id,
            array_limit=limit,
            idempotency_key=None,
            after_unmet=first.after_unmet,
        )
        rows = [{**template, "id": f"{array_id}_{i}", "array_index": i} for i in indices]
        rows[0]["idempotency_key"] = idempotency_key or None
        try:
            with self.db.tx() as s:
                s.connection().execute(insert(table_of(JobRow)), rows)
                task = job_from_row(JobRow(**rows[0]))  # as a read would give it back
                tasks = [replace(task, id=r["id"], array_index=r["array_index"]) for r in rows]
                insert_dependencies(s.connection(), tasks if first.spec.after else [])
                note_jobs(s, tasks)
        except IntegrityError:
            earlier = self._find_by_key(first.owner, idempotency_key) if idempotency_key else None
            if earlier is None:
                raise
            return earlier.array_id or earlier.id, False
        return array_id, True

    def _find_by_key(self, owner: str, key: str) -> Job | None:
        with self.db.read() as s:
            row = s.exec(select(JobRow).where(JobRow.owner == owner, JobRow.idempotency_key == key)).first()
            return job_from_row(row) if row else None

    def get(self, array_id: str) -> ArraySummary | None:
        """The array summed up, or None when no job names it as its array."""
        found = self._summaries([array_id], None)
        return found[0] if found else None

    def list(
        self, institution: str | None, include_terminal: bool, state: JobState | None, limit: int = 1000
    ) -> builtins.list[ArraySummary]:
        """Arrays with a task in `state` (any state; or, without `include_terminal`, one
        that has not ended), newest first."""
        q = select(JobRow.array_id).where(JobRow.array_id != "")
        if institution is not None:
            q = q.where(JobRow.institution == institution)
        if state is not None:
            q = q.where(JobRow.state == state.value)
        elif not include_terminal:
            q = q.where(col(JobRow.state).not_in(_TERMINAL))
        q = (
            q.group_by(JobRow.array_id)
            .order_by(func.max(JobRow.submitted_at).desc(), col(JobRow.array_id).desc())
            .limit(limit)
        )
        with self.db.read() as s:
            ids = list(s.exec(q).all())
        return self._summaries(ids, institution)

    def _summaries(self, ids: builtins.list[str], institution: str | None) -> builtins.list[ArraySummary]:
        if not ids:
            return []
        counts: dict[str, dict[str, int]] = {a: {} for a in ids}
        span: dict[str, tuple[int, int]] = {}
        array_index = col(JobRow.array_index)
        q = (
            sa_select(
                col(JobRow.array_id), col(JobRow.state), func.count(), func.min(array_index), func.max(array_index)
            )
            .where(col(JobRow.array_id).in_(ids))
            .group_by(col(JobRow.array_id), col(JobRow.state))
        )
        with self.db.read() as s:
            for aid, st, n, lo, hi in s.connection().execute(q).all():
                counts[aid][st] = n
                old = span.get(aid, (lo, hi))
                span[aid] = (min(old[0], lo), max(old[1], hi))
            heads = {
                r.array_id: r
                for r in s.exec(select(JobRow).where(col(JobRow.id).in_([f"{a}_{span[a][0]}" for a in span])))
            }
        out: builtins.list[ArraySummary] = []
        for aid in ids:
            head = heads.get(aid)
            if head is None or (institution is not None and head.institution != institution):
                continue
            c = counts[aid]
            job = job_from_row(head)
            lo, hi = span[aid]
            out.append(
                ArraySummary(
                    id=aid,
                    name=job.spec.name,
                    owner=job.owner,
                    institution=job.institution,
                    project=job.spec.project,
                    tasks=sum(c.values()),
                    limit=head.array_limit,
                    submitted_at=job.submitted_at,
                    indices=f"{lo}-{hi}" if hi > lo else str(lo),
                    pending=c.get("PENDING", 0),
                    running=sum(c.get(v, 0) for v in _LIVE),
                    succeeded=c.get("SUCCEEDED", 0),
                    failed=c.get("FAILED", 0),
                    cancelled=c.get("CANCELLED", 0),
                )
            )
        return out

    def cancel_pending(self, array_id: str, now: float, reason: str) -> builtins.list[str]:
        """End every PENDING task at once (one UPDATE); return the ids of the live tasks,
        which the caller cancels one by one (each has a run to stop)."""
        transition(JobState.PENDING, JobState.CANCELLED)  # the one table allows it
        with self.db.tx() as s:
            pending = select(JobRow.id).where(JobRow.array_id == array_id, JobRow.state == "PENDING")
            ended = list(s.exec(pending).all())
            s.connection().execute(
                update(table_of(JobRow))
                .where(col(JobRow.id).in_(ended), col(JobRow.state) == "PENDING")
                .values(state=JobState.CANCELLED.value, finished_at=now, reason=reason, updated_at=now)
            )
            rows = list(
                s.exec(select(JobRow).where(col(JobRow.id).in_(ended)).execution_options(populate_existing=True))
            )
            note_jobs(s, [job_from_row(r) for r in rows])
            record_events(s, [(r, EVENT_ENDED) for r in rows])  # a bulk UPDATE: the flush watch misses it
            live = s.exec(
                select(JobRow.id).where(
                    JobRow.array_id == array_id, col(JobRow.state).in_([JobState.LEASED.value, JobState.RUNNING.value])
                )
            ).all()
        return list(live)
