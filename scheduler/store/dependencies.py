"""Job dependencies in the store: the conditions of each job (`job_dependencies`), the
jobs they name, and the one pass that releases or cancels held jobs.

A PENDING job with `after_unmet` > 0 is held: neither the snapshot nor the leader's
state in memory has it. `resolve` looks only at what changed since the last pass (the
jobs that ended, through the index on `depends_on`, and the jobs held since), so a
cycle pays for what ended, not for the queue. See scheduler/dependencies.py for the rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, insert
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from minga.common.domain import DependencyStatus, Job, JobState
from minga.common.states import transition
from minga.scheduler.dependencies import After, Condition, Status, judge, state_text, status_of
from minga.scheduler.store.base import Database
from minga.scheduler.store.json_columns import spec_from_json
from minga.scheduler.store.models import DependencyRow, JobRow, table_of
from minga.scheduler.store.requeue import hold

CHUNK = 500  # ids per IN (...): well under every database's limit on parameters
Fence = Callable[[Session], None]


@dataclass(frozen=True)
class Target:
    """A job or job array a new job may wait for: whose it is."""

    job_id: str
    institution: str
    array: bool


@dataclass
class Resolution:
    """What one pass did: the jobs it released to the queue, those it cancelled, and those
    still held whose reason it rewrote (they wait for another job now)."""

    released: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    reworded: list[str] = field(default_factory=list)


def conditions_of(spec_after: Iterable[str]) -> list[After]:
    """A stored spec's `after` ("ID:COND", checked at submit) as conditions."""
    out = []
    for item in spec_after:
        job_id, _, cond = item.rpartition(":")
        out.append(After(job_id, Condition(cond)) if job_id else After(cond, Condition.OK))
    return out


def insert_dependencies(conn: Connection, jobs: Sequence[Job]) -> None:
    """The condition rows of new jobs, in one statement, in the submit's transaction."""
    rows = [
        {"job_id": job.id, "depends_on": a.job_id, "condition": a.condition.value}
        for job in jobs
        for a in conditions_of(job.spec.after)
    ]
    if rows:
        conn.execute(insert(table_of(DependencyRow)), rows)


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    items = list(ids)
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _dependents(s: Session, ids: Iterable[str]) -> set[str]:
    """The jobs that wait for any of `ids` (the index on depends_on)."""
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(s.exec(select(DependencyRow.job_id).where(col(DependencyRow.depends_on).in_(chunk))).all())
    return found


def _states(s: Session, ids: Iterable[str]) -> tuple[dict[str, Counter[JobState]], set[str]]:
    """Each id's tasks' states (a job: its one state), and which ids are arrays."""
    wanted = set(ids)
    states: dict[str, Counter[JobState]] = {}
    for chunk in _chunks(wanted):
        for job_id, state in s.exec(select(JobRow.id, JobRow.state).where(col(JobRow.id).in_(chunk))).all():
            states[job_id] = Counter({JobState(state): 1})
    arrays = wanted - set(states)
    for chunk in _chunks(arrays):
        counted = s.exec(
            select(JobRow.array_id, JobRow.state, func.count())
            .where(col(JobRow.array_id).in_(chunk))
            .group_by(JobRow.array_id, JobRow.state)
        ).all()
        for array_id, state, n in counted:
            states.setdefault(array_id, Counter())[JobState(state)] += n
    return states, arrays


class DependenciesRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def targets(self, ids: Sequence[str]) -> dict[str, Target]:
        """The jobs and job arrays of `ids` that exist (a missing id is not in the answer)."""
        found: dict[str, Target] = {}
        with self.db.read() as s:
            for chunk in _chunks(ids):
                for job_id, inst in s.exec(select(JobRow.id, JobRow.institution).where(col(JobRow.id).in_(chunk))):
                    found[job_id] = Target(job_id, inst, array=False)
            rest = [i for i in ids if i not in found]
            for chunk in _chunks(rest):
                q = select(JobRow.array_id, func.min(JobRow.institution)).where(col(JobRow.array_id).in_(chunk))
                for array_id, inst in s.exec(q.group_by(JobRow.array_id)):
                    found[array_id] = Target(array_id, inst, array=True)
        return found

    def reaches(self, start: Iterable[str], goal: set[str], limit: int = 10_000) -> str | None:
        """The first job of `goal` that `start` waits for, directly or through others (a
        cycle, were a job of `goal` to wait for `start`); None when there is none. An
        array waits for what its tasks wait for."""
        seen: set[str] = set()
        frontier = set(start)
        with self.db.read() as s:
            while frontier and len(seen) < limit:
                hit = next((j for j in sorted(frontier) if j in goal), None)
                if hit is not None:
                    return hit
                seen |= frontier
                nxt: set[str] = set()
                for chunk in _chunks(frontier):
                    nxt.update(s.exec(select(DependencyRow.depends_on).where(col(DependencyRow.job_id).in_(chunk))))
                    of_tasks = select(DependencyRow.depends_on).join(JobRow, col(JobRow.id) == DependencyRow.job_id)
                    nxt.update(s.exec(of_tasks.where(col(JobRow.array_id).in_(chunk))))
                frontier = nxt - seen
        return None

    def of_job(self, job: Job) -> tuple[DependencyStatus, ...]:
        """The job's conditions and where each stands now (`minga job status`)."""
        conditions = conditions_of(job.spec.after)
        if not conditions:
            return ()
        with self.db.read() as s:
            states, arrays = _states(s, [a.job_id for a in conditions])
        out = []
        for a in conditions:
            counted = states.get(a.job_id, Counter())
            status = status_of(a.condition, counted) if counted else Status.NEVER
            state = state_text(counted, a.job_id in arrays) if counted else "gone"
            out.append(DependencyStatus(a.job_id, a.condition.value, state, status.value))
        return tuple(out)

    def dependents(self, ids: Iterable[str]) -> list[str]:
        """Every job that waits for one of `ids`, directly or through others (and for an
        array's id, for its tasks too), in the order found."""
        order: list[str] = []
        seen = set(ids)
        with self.db.read() as s:
            frontier = set(ids)
            while frontier:
                found = _dependents(s, frontier | _relatives(s, frontier)) - seen
                order.extend(sorted(found))
                seen |= found
                frontier = found
        return order

    def resolve(
        self, ended: set[str], held: set[str], everything: bool, now: float, fence: Fence | None = None
    ) -> Resolution:
        """One pass, in one transaction: every held job that waits for a job of `ended`
        (ids of jobs and arrays), or is in `held`, or (`everything`) any held job, is
        released when all its conditions hold, cancelled when one never can (and then
        the jobs waiting for it are judged in turn: the cascade is transitive), or keeps
        waiting with its reason naming the job it waits for."""
        done = Resolution()
        with self.db.tx() as s:
            if fence is not None:
                fence(s)
            if everything:
                q = select(JobRow.id).where(JobRow.after_unmet > 0, JobRow.state == JobState.PENDING.value)
                candidates = set(s.exec(q).all())
            else:
                candidates = held | _dependents(s, ended)
            while candidates:
                ended_now = self._judge(s, candidates, now, done)
                candidates = _dependents(s, ended_now)
        return done

    def _judge(self, s: Session, ids: set[str], now: float, done: Resolution) -> set[str]:
        """Judge the held jobs among `ids`; the ids of the jobs (and arrays) it ended."""
        rows: list[JobRow] = []
        for chunk in _chunks(sorted(ids)):
            rows.extend(
                s.exec(
                    select(JobRow)
                    .where(col(JobRow.id).in_(chunk), JobRow.after_unmet > 0, JobRow.state == JobState.PENDING.value)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).all()
            )
        hold(s, rows)
        conditions = {row.id: _conditions(row) for row in rows}
        states, arrays = _states(s, {a.job_id for cs in conditions.values() for a in cs})
        ended: set[str] = set()
        for row in rows:
            verdict = judge(conditions[row.id], states, arrays)
            if verdict.status is Status.MET:
                row.after_unmet, row.reason, row.updated_at = 0, verdict.reason, now
                done.released.append(row.id)
            elif verdict.status is Status.NEVER:
                row.state = transition(JobState.PENDING, JobState.CANCELLED).value
                row.after_unmet, row.reason, row.finished_at, row.updated_at = 0, verdict.reason, now, now
                done.cancelled.append(row.id)
                ended.add(row.id)
                if row.array_id:
                    ended.add(row.array_id)
            elif (row.reason, row.after_unmet) != (verdict.reason, verdict.unmet):
                row.reason, row.after_unmet = verdict.reason, verdict.unmet
                done.reworded.append(row.id)
            s.add(row)
        s.flush()
        return ended


def _conditions(row: JobRow) -> list[After]:
    return conditions_of(spec_from_json(row.spec_json).after)


def _relatives(s: Session, ids: Iterable[str]) -> set[str]:
    """The arrays of the tasks among `ids`, and the tasks of the arrays among them: a job
    waiting for an array waits for each of its tasks."""
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(s.exec(select(JobRow.array_id).where(col(JobRow.id).in_(chunk), JobRow.array_id != "")))
        found.update(s.exec(select(JobRow.id).where(col(JobRow.array_id).in_(chunk))))
    return found
