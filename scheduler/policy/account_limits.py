"""Limits per user and per project: Slurm's QOS and association limits, in the cycle.

Before the policy proper runs (like the array cap of `array_cap.py`), the pending jobs
that a limit holds are set aside with the limit as their reason; every other phase then
sees only the jobs that may start now, so a held job never blocks anyone else's.

- max GPUs (Slurm's GrpTRES=gres/gpu, MaxTRESPerUser): an account's headroom is its
  limit minus the GPUs its live runs hold. Its pending jobs take headroom in queue order
  (priority, then submit time) whether or not they are placed this cycle, so one cycle
  cannot overshoot, and a user's big job is not starved by their own stream of small
  ones (Slurm likewise keeps a limit-blocked job's place in its priority order). A job
  whose GPUs do not fit in what is left waits, held (Slurm's AssocGrpGRES /
  QOSMaxGRESPerUser).
- max walltime (Slurm's MaxWall): a job asking for more (or for no limit at all) waits,
  held. Submits are refused before that; this holds jobs pending when the limit was
  lowered, until it is raised or they are cancelled.

A federation with no limit set pays nothing here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from minga.common.domain import Job
from minga.common.limits import PROJECT, AccountLimit, format_duration, user_key
from minga.common.snapshot import Snapshot, Waiting


def gpus_reason(limit: AccountLimit, live: int, claimed: int) -> str:
    """'held: user alice at the max-GPUs limit (8 of 8) of project uchile/nlp'."""
    used = live + claimed
    ahead = f": {live} running, {claimed} for jobs ahead" if claimed else ""
    of = f"({used} of {limit.max_gpus}{ahead})"
    if limit.kind == PROJECT:
        return f"held: project {limit.key} at its max-GPUs limit {of}"
    return f"held: user {limit.user} at the max-GPUs limit {of} of project {limit.project}"


def walltime_reason(limit: AccountLimit, walltime: int) -> str:
    """'held: walltime 2d exceeds the project's max walltime 1d'."""
    asked = f"walltime {format_duration(walltime)}" if walltime else "unlimited walltime"
    whose = "the project's" if limit.kind == PROJECT else f"user {limit.user}'s"
    return f"held: {asked} exceeds {whose} max walltime {format_duration(limit.max_walltime_seconds or 0)}"


def split_limited(snapshot: Snapshot) -> tuple[Snapshot, tuple[Waiting, ...]]:
    """The snapshot without the jobs a limit holds, and those jobs' verdicts."""
    if not snapshot.account_limits:
        return snapshot, ()
    limits = {(lim.kind, lim.key): lim for lim in snapshot.account_limits}
    projects = {lim.project for lim in snapshot.account_limits}
    used: Counter[tuple[str, str]] = Counter()  # account -> GPUs of its live runs
    for run in snapshot.live_runs:
        if run.project in projects:
            used[(PROJECT, run.project)] += run.gpus
            used[("user", user_key(run.project, run.owner))] += run.gpus
    live = Counter(used)
    limited = [j for j in snapshot.pending if j.spec.project in projects]
    limited.sort(key=lambda j: (-j.spec.priority, j.submitted_at, j.id))
    waiting: list[Waiting] = []
    for job in limited:
        accounts = [
            lim
            for lim in (
                limits.get((PROJECT, job.spec.project)),
                limits.get(("user", user_key(job.spec.project, job.owner))),
            )
            if lim is not None
        ]
        reason = _held(job, accounts, used, live)
        if reason:
            waiting.append(Waiting(job.id, reason))
            continue
        for lim in accounts:
            used[(lim.kind, lim.key)] += job.spec.resources.gpus
    if not waiting:
        return snapshot, ()
    held = {w.job_id for w in waiting}
    pending = tuple(j for j in snapshot.pending if j.id not in held)
    return replace(snapshot, pending=pending), tuple(waiting)


def _held(
    job: Job, accounts: list[AccountLimit], used: Counter[tuple[str, str]], live: Counter[tuple[str, str]]
) -> str:
    """Why a limit of `accounts` holds `job` now ("" if none does); the user's first."""
    accounts = sorted(accounts, key=lambda lim: lim.kind != "user")
    walltime = job.spec.walltime_seconds
    for lim in accounts:
        cap = lim.max_walltime_seconds
        if cap is not None and (walltime == 0 or walltime > cap):
            return walltime_reason(lim, walltime)
    gpus = job.spec.resources.gpus
    for lim in accounts:
        account = (lim.kind, lim.key)
        if gpus and lim.max_gpus is not None and used[account] + gpus > lim.max_gpus:
            return gpus_reason(lim, live[account], used[account] - live[account])
    return ""
