"""Limits per user and per project (Slurm's QOS and association limits): setting and
listing them, and the checks a submit must pass. The rules are in `minga.common.limits`;
the cycle's part is `minga.scheduler.policy.account_limits`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace

from minga.common.domain import InvalidArgument, NotFound, OverLimit, PermissionDenied, Principal, Role
from minga.common.limits import KINDS, PROJECT, UNLIMITED, USER, AccountLimit, format_duration, user_key
from minga.scheduler.core import Core
from minga.scheduler.validation import MAX_WALLTIME, check_account_id

MAX_LIMIT_GPUS = 100_000
MAX_LIMIT_PENDING = 10_000_000
_SUBMITS = threading.Lock()  # a pending count and the insert it allows, one at a time (limited accounts only)

# A field left None is kept as it is; UNLIMITED (-1) clears it; anything else sets it.
Change = int | None


def set_account_limits(
    core: Core,
    caller: Principal,
    kind: str,
    key: str,
    max_gpus: Change = None,
    max_pending: Change = None,
    max_walltime_seconds: Change = None,
) -> AccountLimit:
    """Change an account's limits; an admin's for any, an institution-admin's for its own
    institution's (the interceptor checks the project's owner; this checks again)."""
    kind, key = _checked_account(kind, key)
    if caller.role is Role.INSTITUTION_ADMIN and key.split("/", 1)[0] != caller.institution:
        raise PermissionDenied(
            f"role {caller.role.value} may set limits only on institution {caller.institution!r}'s accounts"
        )
    if caller.role not in (Role.ADMIN, Role.INSTITUTION_ADMIN):
        raise PermissionDenied(f"role {caller.role.value} may not set limits")
    current = core.store.limits.get(kind, key)
    new = replace(
        current,
        max_gpus=_changed("max_gpus", current.max_gpus, max_gpus, MAX_LIMIT_GPUS),
        max_pending=_changed("max_pending", current.max_pending, max_pending, MAX_LIMIT_PENDING),
        max_walltime_seconds=_changed(
            "max_walltime_seconds", current.max_walltime_seconds, max_walltime_seconds, MAX_WALLTIME, low=1
        ),
    )
    if kind == USER:
        owner = core.store.accounts.owner_of("user", new.user)
        if owner != new.institution:
            raise NotFound(f"no user {new.user!r} in institution {new.institution!r}")
    stored = core.store.limits.set(new, caller.name, core.clock.now())
    core.cycle.trigger()
    return stored


def _checked_account(kind: str, key: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}; got {kind[:32]!r}")
    return kind, check_account_id(kind, key)


def _changed(field: str, current: int | None, change: Change, high: int, low: int = 0) -> int | None:
    if change is None:
        return current
    if change == UNLIMITED:
        return None
    if not low <= change <= high:
        raise InvalidArgument(f"{field} must be from {low} to {high}, or {UNLIMITED} for unlimited; got {change}")
    return change


def list_account_limits(core: Core, caller: Principal) -> list[AccountLimit]:
    """The limits the caller may see: an admin all, an institution-admin its institution's,
    a researcher its institution's projects' and its own."""
    limits = core.store.limits.all(core.clock.now())
    if caller.role is Role.ADMIN:
        return list(limits)
    mine = [lim for lim in limits if caller.institution and lim.institution == caller.institution]
    if caller.role is Role.INSTITUTION_ADMIN:
        return mine
    return [lim for lim in mine if lim.kind == PROJECT or lim.user == caller.name]


def limits_of(core: Core, project: str, owner: str) -> list[AccountLimit]:
    """The limits that apply to `owner`'s jobs in `project`: the project's, then the user's."""
    limits = core.store.limits.all(core.clock.now())
    if not limits:
        return []
    wanted = {(PROJECT, project), (USER, user_key(project, owner))}
    return [lim for lim in limits if (lim.kind, lim.key) in wanted]


def check_walltime(limits: list[AccountLimit], walltime: int) -> None:
    """Slurm's MaxWall: a job asking for more than its account allows, or for no limit."""
    for lim in limits:
        cap = lim.max_walltime_seconds
        if cap is not None and (walltime == 0 or walltime > cap):
            asked = f"{format_duration(walltime)}" if walltime else "0 (unlimited)"
            raise InvalidArgument(
                f"spec.walltime_seconds {asked} exceeds the max walltime {format_duration(cap)} "
                f"of {lim.describe()}; ask for at most {cap} seconds"
            )


@contextmanager
def _counted(core: Core, limits: list[AccountLimit], jobs: int) -> Iterator[None]:
    """Slurm's MaxSubmitJobs: refuse `jobs` more if an account would have more pending than
    its max; held until the insert is done, so two submits cannot both take the last slot."""
    with _SUBMITS:
        for lim in limits:
            if lim.max_pending is None:
                continue
            pending = core.store.limits.pending_count(lim)
            if pending + jobs > lim.max_pending:
                what = f"{jobs} more jobs" if jobs > 1 else "another job"
                raise OverLimit(
                    f"over the max-pending limit of {lim.describe()}: {pending} of {lim.max_pending} pending; "
                    f"{what} refused (wait for some to start or end, or ask an admin to raise it)"
                )
        yield


def submit_guard(core: Core, project: str, owner: str, walltime: int, jobs: int = 1) -> AbstractContextManager[None]:
    """Checks a submit of `jobs` jobs must pass before it is stored; wrap the insert in it.
    No limit set: nothing is read and nothing is locked."""
    limits = limits_of(core, project, owner)
    if not limits:
        return nullcontext()
    check_walltime(limits, walltime)
    if all(lim.max_pending is None for lim in limits):
        return nullcontext()
    return _counted(core, limits, jobs)
