"""Resource-level visibility rules (the RPC-level ones live in api/authz.py)."""
from __future__ import annotations

from scheduler.domain import Job, NotFound, Principal, Role


def can_see_job(caller: Principal, job: Job) -> bool:
    """Admins see every job; researchers only their own institution's."""
    if caller.role is Role.ADMIN:
        return True
    return caller.role is Role.RESEARCHER and bool(caller.institution) and caller.institution == job.institution


def visible_job(caller: Principal, job: Job) -> Job:
    """The job if the caller may see it; otherwise it does not exist for them."""
    if not can_see_job(caller, job):
        raise NotFound(f"no job {job.id!r}")
    return job


def institution_scope(caller: Principal) -> str | None:
    """Which institution's jobs the caller lists: None means all of them."""
    return None if caller.role is Role.ADMIN else caller.institution
