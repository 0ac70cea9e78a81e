"""Jobs as researchers see them: submit (idempotent), read, list, cancel."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from scheduler.domain import Job, JobState, NotFound, TERMINAL_JOB_STATES
from scheduler.states import transition
from scheduler.store.base import Database, job_from_row
from scheduler.store.codec import secrets_to_json, spec_to_json
from scheduler.store.models import JobRow, RunRow
from scheduler.store.requeue import locked_job


@dataclass(frozen=True)
class CancelOutcome:
    job: Job
    stop_run_id: str = ""   # the live run to stop on its site, if any
    stop_site: str = ""


class JobsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(self, job: Job, idempotency_key: str | None) -> tuple[Job, bool]:
        """Insert a job, or return the earlier one with the same (owner, key).

        No look-up first: the unique (owner, key) constraint decides, which also covers
        two retries racing each other.
        """
        row = JobRow(id=job.id, owner=job.owner, institution=job.institution,
                     spec_json=spec_to_json(job.spec), secret_env_json=secrets_to_json(job.spec),
                     state=job.state.value,
                     reason=job.reason, submitted_at=job.submitted_at, project=job.spec.project,
                     updated_at=job.submitted_at, idempotency_key=idempotency_key or None)
        try:
            with self.db.tx() as s:
                s.add(row)
        except IntegrityError:
            earlier = self.find_by_key(job.owner, idempotency_key) if idempotency_key else None
            if earlier is None:
                raise
            return earlier, False  # an earlier or concurrent submit with this key won
        return job_from_row(row), True   # as read back: secret values redacted

    def find_by_key(self, owner: str, key: str) -> Job | None:
        with self.db.read() as s:
            row = s.exec(select(JobRow).where(JobRow.owner == owner,
                                              JobRow.idempotency_key == key)).first()
            return job_from_row(row) if row else None

    def get(self, job_id: str) -> Job:
        with self.db.read() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            return job_from_row(row)

    def list(self, institution: str | None, include_terminal: bool,
             state: JobState | None, limit: int = 1000, plain_only: bool = False) -> list[Job]:
        """Newest first. `institution=None` lists every institution's jobs; `plain_only`
        leaves out the tasks of job arrays (listed as arrays instead)."""
        q = select(JobRow)
        if plain_only:
            q = q.where(JobRow.array_id == "")
        if institution is not None:
            q = q.where(JobRow.institution == institution)
        if state is not None:
            q = q.where(JobRow.state == state.value)
        elif not include_terminal:
            q = q.where(col(JobRow.state).not_in([s.value for s in TERMINAL_JOB_STATES]))
        q = q.order_by(col(JobRow.submitted_at).desc(), col(JobRow.id).desc()).limit(limit)
        with self.db.read() as s:
            return [job_from_row(r) for r in s.exec(q).all()]

    def request_cancel(self, job_id: str, now: float, reason: str) -> CancelOutcome:
        """PENDING jobs end at once; live ones go to CANCELLING until their site confirms."""
        with self.db.tx() as s:
            row = locked_job(s, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            current = JobState(row.state)
            if current.terminal or current is JobState.CANCELLING:
                return CancelOutcome(job_from_row(row))  # cancel is idempotent
            if current is JobState.PENDING:
                row.state = transition(current, JobState.CANCELLED).value
                row.finished_at = now
                row.reason = reason
                row.updated_at = now
                s.add(row)
                return CancelOutcome(job_from_row(row))
            row.state = transition(current, JobState.CANCELLING).value
            row.reason = reason
            row.updated_at = now
            s.add(row)
            run = s.get(RunRow, row.run_id)
            site = run.site if run else row.site
            return CancelOutcome(job_from_row(row), stop_run_id=row.run_id, stop_site=site)
