"""Jobs as researchers see them: submit (idempotent), read, list, cancel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.schema import ColumnDefault
from sqlmodel import Session, col, select

from minga.common.audit import AuditEntry
from minga.common.domain import TERMINAL_JOB_STATES, Job, JobState, NotFound
from minga.common.states import transition
from minga.scheduler.store.audit import AuditColumns, add_entry, audit_values
from minga.scheduler.store.base import Database, StoreUnavailable, job_from_row
from minga.scheduler.store.changes import note_jobs
from minga.scheduler.store.dependencies import insert_dependencies
from minga.scheduler.store.group_commit import GroupCommit
from minga.scheduler.store.json_columns import secrets_to_json, spec_from_json, spec_to_json
from minga.scheduler.store.models import AuditRow, JobRow, RunRow, table_of
from minga.scheduler.store.requeue import locked_job

AuditLine = Callable[[Job], AuditEntry]  # the audit line of a submit, given the job it answers with


@dataclass(frozen=True)
class CancelOutcome:
    job: Job
    stop_run_id: str = ""  # the live run to stop on its site, if any
    stop_site: str = ""


@dataclass(frozen=True)
class _Submit:
    job: Job
    key: str | None
    audit: AuditLine | None
    row: dict[str, object]  # the job's new row, made before the commit (in the caller's thread)
    read: Job  # the job as a read of that row gives it back

    @classmethod
    def of(cls, job: Job, key: str | None, audit: AuditLine | None) -> _Submit:
        row = _row(job, key)
        return cls(job, key, audit, row, _as_read(job, row))


Submitted = tuple[Job, bool]  # (the job, as read back; created now, or an earlier one for the key)


class JobsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.committer: GroupCommit[_Submit, Submitted] = GroupCommit(self._commit_batch)

    def submit(self, job: Job, idempotency_key: str | None, audit: AuditLine | None = None) -> Submitted:
        """Insert a job, or return the earlier one with the same (owner, key); with `audit`,
        its audit line goes into the same transaction.

        Concurrent submits are committed together (`GroupCommit`). No look-up first: the
        unique (owner, key) constraint decides, which also covers two retries racing.
        """
        return self.committer.submit(_Submit.of(job, idempotency_key or None, audit))

    def _commit_batch(self, batch: Sequence[_Submit]) -> list[Submitted | BaseException]:
        """All in one transaction; if that fails (a key used before, one bad row), one by
        one, so that each caller gets exactly its own answer. A database that is down
        fails them all: nothing was written."""
        if len(batch) > 1:
            try:
                with self.db.tx() as s:
                    return list(_insert(s, batch))
            except StoreUnavailable:
                raise
            except Exception:  # noqa: BLE001 - sorted out below, request by request
                pass
        return [self._commit_one(request) for request in batch]

    def _commit_one(self, request: _Submit) -> Submitted | BaseException:
        try:
            with self.db.tx() as s:
                return _insert(s, [request])[0]
        except IntegrityError as exc:
            conflict = exc
        except Exception as exc:  # noqa: BLE001 - this caller's error, and only theirs
            return exc
        earlier = self.find_by_key(request.job.owner, request.key) if request.key else None
        if earlier is None:
            return conflict
        if request.audit is not None:  # an earlier or concurrent submit with this key won
            with self.db.tx() as s:
                add_entry(s, request.audit(earlier))
        return earlier, False

    def find_by_key(self, owner: str, key: str) -> Job | None:
        with self.db.read() as s:
            row = s.exec(select(JobRow).where(JobRow.owner == owner, JobRow.idempotency_key == key)).first()
            return job_from_row(row) if row else None

    def get(self, job_id: str) -> Job:
        with self.db.read() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            return job_from_row(row)

    def list(
        self,
        institution: str | None,
        include_terminal: bool,
        state: JobState | None,
        limit: int = 1000,
        plain_only: bool = False,
    ) -> list[Job]:
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


def _insert(s: Session, batch: Sequence[_Submit]) -> list[Submitted]:
    """Insert the batch's jobs and their audit lines in two multi-row statements, and tell
    the write-through observers (store.changes) of the jobs. A key used twice in the batch
    makes one job: the second request is answered with the first's."""
    firsts: dict[tuple[str, str], Job] = {}
    answers: list[Submitted] = []
    rows: list[dict[str, object]] = []
    lines: list[AuditColumns] = []
    for request in batch:
        first = firsts.get((request.job.owner, request.key)) if request.key else None
        if first is None:
            rows.append(request.row)
            answer = (request.read, True)
            if request.key:
                firsts[(request.job.owner, request.key)] = answer[0]
        else:
            answer = (first, False)
        if request.audit is not None:
            lines.append(audit_values(request.audit(answer[0])))
        answers.append(answer)
    conn = s.connection()
    conn.execute(insert(table_of(JobRow)), rows)
    insert_dependencies(conn, [job for job, created in answers if created and job.spec.after])
    if lines:
        conn.execute(insert(table_of(AuditRow)), lines)
    note_jobs(s, [job for job, created in answers if created])
    return answers


def _row(job: Job, key: str | None) -> dict[str, object]:
    """Every column of a new job's row (a multi-row INSERT needs them all)."""
    return {
        **_NEW_ROW,
        "id": job.id,
        "owner": job.owner,
        "institution": job.institution,
        "spec_json": spec_to_json(job.spec),
        "secret_env_json": secrets_to_json(job.spec),
        "state": job.state.value,
        "reason": job.reason,
        "submitted_at": job.submitted_at,
        "project": job.spec.project,
        "updated_at": job.submitted_at,
        "idempotency_key": key,
        "after_unmet": job.after_unmet,
    }


_NEW_ROW = {
    c.name: c.default.arg
    for c in table_of(JobRow).columns
    if isinstance(c.default, ColumnDefault) and not callable(c.default.arg)
}


def _as_read(job: Job, row: dict[str, object]) -> Job:
    """The job as a read of its new row gives it back: secret values redacted."""
    return replace(job, spec=spec_from_json(str(row["spec_json"])), updated_at=job.submitted_at, not_before=0.0)
