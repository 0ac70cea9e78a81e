"""Resource-level visibility: what a caller sees of listings and records.

`minga.scheduler.api.authz` decides who may call what, on which target; these rules
narrow what a permitted call shows. Admins see the federation; institution-admins
and researchers their own institution's jobs, users, tokens and audit lines; other
institutions only as aggregates (quotas, usage reports), never a job's entrypoint,
environment or logs.
"""

from __future__ import annotations

from minga.common.domain import Job, NotFound, Principal, Role

INSTITUTION_ROLES = frozenset({Role.RESEARCHER, Role.INSTITUTION_ADMIN})


def can_see_job(caller: Principal, job: Job) -> bool:
    """Admins see every job; researchers and institution-admins only their own institution's."""
    return can_see_institution(caller, job.institution)


def can_see_institution(caller: Principal, institution: str) -> bool:
    """Whether the caller sees the jobs of `institution` (the rule of `can_see_job`)."""
    if caller.role is Role.ADMIN:
        return True
    return caller.role in INSTITUTION_ROLES and bool(caller.institution) and caller.institution == institution


def visible_job(caller: Principal, job: Job) -> Job:
    """The job if the caller may see it; otherwise it does not exist for them."""
    if not can_see_job(caller, job):
        raise NotFound(f"no job {job.id!r}")
    return job


def can_see_user(caller: Principal, leaf: str) -> bool:
    """Whether the caller sees the user leaf '<institution>/<project>/<user>' in the quota
    tree: admins every one, institution-admins their institution's, researchers themselves."""
    institution, _, rest = leaf.partition("/")
    if caller.role is Role.ADMIN:
        return True
    if not caller.institution or institution != caller.institution:
        return False
    if caller.role is Role.INSTITUTION_ADMIN:
        return True
    return caller.role is Role.RESEARCHER and rest.rpartition("/")[2] == caller.name


def institution_scope(caller: Principal) -> str | None:
    """Which institution's records the caller lists: None means all of them. Anyone but
    an admin is held to their own institution ("" for none matches nothing of anyone's)."""
    return None if caller.role is Role.ADMIN else caller.institution


def token_scope(caller: Principal, owner: str) -> tuple[str, str | None]:
    """(owner, institution) of the tokens a caller lists: an admin any, an
    institution-admin its institution's, anyone else only their own."""
    if caller.role is Role.ADMIN:
        return owner, None
    if caller.role is Role.INSTITUTION_ADMIN:
        return owner, caller.institution
    return caller.site or caller.name, caller.institution
