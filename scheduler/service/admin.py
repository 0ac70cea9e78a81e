"""Institutions, users, join tokens, sites and the quota view."""

from __future__ import annotations

import math
from collections.abc import Mapping

from minga.common.accounts import Institution, TokenInfo, User
from minga.common.audit import AuditEntry
from minga.common.domain import LIVE_JOB_STATES, InvalidArgument, Job, JobState, Principal, Role, Site, SiteState
from minga.common.quotas import QuotaView
from minga.common.site_view import SiteView
from minga.scheduler.auth import DEFAULT_USER_TTL, MAX_USER_TTL, new_token
from minga.scheduler.core import Core
from minga.scheduler.quota import quota_view
from minga.scheduler.service.access import can_see_user, institution_scope, token_scope
from minga.scheduler.validation import check_country, check_slug, check_weight

DEFAULT_JOIN_TTL = 24 * 3600
MAX_JOIN_TTL = 30 * 24 * 3600


def add_institution(core: Core, slug: str, name: str, country: str, weight: float) -> Institution:
    check_slug("institution", slug)
    if not name.strip() or len(name) > 200:
        raise InvalidArgument("name must be 1-200 characters")
    inst = Institution(slug, name.strip(), check_country("country", country), check_weight(weight))
    return core.store.accounts.add_institution(inst, core.clock.now())


def list_institutions(core: Core) -> list[Institution]:
    return core.store.accounts.list_institutions()


def add_user(
    core: Core, name: str, institution: str, role: Role | None, ttl_seconds: int = 0
) -> tuple[User, str, float]:
    """Create a user; returns it, its token (which exists only in this reply) and the
    token's expiry. User tokens always expire (90 days unless told), so a forgotten
    account stops working on its own; `minga token rotate` renews one."""
    check_slug("user name", name)
    role = role or Role.RESEARCHER
    if role is Role.SITE:
        raise InvalidArgument("role site is for site credentials: use `minga admin site-token create`")
    if role is not Role.ADMIN and not institution:
        raise InvalidArgument(f"a user of role {role.value} needs --institution")
    ttl = ttl_seconds or DEFAULT_USER_TTL
    if not 0 < ttl <= MAX_USER_TTL:
        raise InvalidArgument(f"expires must be between 1 s and {MAX_USER_TTL // 86400} days")
    if institution:
        core.store.accounts.get_institution(institution)
    token = new_token("user")
    now = core.clock.now()
    user = User(name=name, institution=institution, role=role, created_at=now)
    return core.store.accounts.add_user(user, core.store.accounts.hash(token), now + ttl), token, now + ttl


def list_users(core: Core, caller: Principal) -> list[User]:
    """An admin's whole federation; an institution-admin's own institution."""
    return core.store.accounts.list_users(institution_scope(caller))


def list_tokens(core: Core, caller: Principal, owner: str) -> list[TokenInfo]:
    """Credentials as the broker records them (never a secret or hash): an admin's
    federation, an institution-admin's institution, anyone else their own."""
    if len(owner) > 128 or "\x00" in owner:
        raise InvalidArgument("owner must be a user or site name (at most 128 characters)")
    owner, institution = token_scope(caller, owner)
    return core.store.accounts.list_tokens(owner, institution)


def create_site_token(core: Core, institution: str, site: str, ttl_seconds: int, country: str) -> tuple[str, float]:
    """A one-time join token for `site` of `institution`; returns (token, expires_at)."""
    check_slug("site", site)
    ttl = ttl_seconds or DEFAULT_JOIN_TTL
    if not 0 < ttl <= MAX_JOIN_TTL:
        raise InvalidArgument(f"ttl must be between 1 s and {MAX_JOIN_TTL // 86400} days")
    inst = core.store.accounts.get_institution(institution)
    country = check_country("country", country) if country else inst.country
    token = new_token("join")
    now = core.clock.now()
    core.store.accounts.add_join_token(core.store.accounts.hash(token), institution, site, country, now, now + ttl)
    return token, now + ttl


def _view(site: Site, in_use: Mapping[str, int]) -> SiteView:
    return SiteView(site, tuple(sorted(in_use.items())))


def list_sites(core: Core) -> list[SiteView]:
    in_use = core.store.sites.gpus_in_use()
    return [_view(s, in_use.get(s.name, {})) for s in core.store.sites.list()]


def set_admin_state(core: Core, site: str, state: SiteState | None) -> SiteView:
    """Cordoned and draining sites keep their runs but take no new ones; None lifts either.
    (Draining is a cordon the admin watches until the site's runs are gone.)"""
    updated = core.store.sites.set_admin_state(site, state)
    core.cycle.trigger()
    return _view(updated, core.store.sites.gpus_in_use().get(site, {}))


def set_site_labels(core: Core, site: str, labels: dict[str, str]) -> SiteView:
    """Labels are what jobs' --label constraints match (like Slurm node features)."""
    if len(labels) > 32:
        raise InvalidArgument("a site may carry at most 32 labels")
    for key, value in labels.items():
        if not key or len(key) > 63 or len(value) > 63:
            raise InvalidArgument(f"label {key!r}: keys are 1-63 characters, values up to 63")
    updated = core.store.sites.set_labels(site, labels)
    core.cycle.trigger()
    return _view(updated, core.store.sites.gpus_in_use().get(site, {}))


_LIVE_IN_ORDER = (JobState.LEASED, JobState.RUNNING, JobState.CANCELLING)
assert frozenset(_LIVE_IN_ORDER) == LIVE_JOB_STATES


def show_quotas(core: Core, tree: bool, caller: Principal) -> QuotaView:
    """Per institution and model: GPUs owned, used, held, pending, and the fair-share view;
    per institution its fair share now next to what it holds; the entitlement floor. The
    tree's user leaves: only those the caller may see (`access.can_see_user`)."""
    institutions = [(i.slug, i.country) for i in core.store.accounts.list_institutions()]
    state, now = core.cycle.level_state(), core.clock.now()
    if state is not None:
        # The leader's federation in memory: the pending queue and the snapshot cost no reads
        # (from the store they were ~0.7 s at 10,000 pending); only the few live jobs are read.
        # One read per live state, in lifecycle order: a job that moves on between two reads
        # (LEASED, then RUNNING) is counted once, in its newer state.
        live = {j.id: j for s in _LIVE_IN_ORDER for j in core.store.jobs.list(None, False, s, limit=1_000_000)}
        jobs: list[Job] = state.pending_jobs() + list(live.values())
        snapshot = state.snapshot(now)
    else:
        jobs = core.store.jobs.list(None, include_terminal=False, state=None, limit=1_000_000)
        snapshot = core.store.runs.load_snapshot(now)
    return quota_view(institutions, jobs, snapshot, tree, lambda leaf: can_see_user(caller, leaf))


MAX_AUDIT_ENTRIES = 10_000


def list_audit(core: Core, caller: Principal, since: float, who: str, limit: int) -> list[AuditEntry]:
    """The audit log, oldest first: the most recent `limit` entries (0: 1000) since `since`.
    An institution-admin sees the calls of its own institution's users and sites, and the
    scheduler's preemptions of its jobs."""
    if not 0 <= limit <= MAX_AUDIT_ENTRIES:
        raise InvalidArgument(f"limit is {limit}; it must be between 0 and {MAX_AUDIT_ENTRIES}")
    if not math.isfinite(since):
        raise InvalidArgument("since must be a time (unix seconds)")
    if len(who) > 128:
        raise InvalidArgument("who is longer than 128 characters")
    scope = institution_scope(caller)
    callers = None
    if scope is not None:
        callers = (
            {u.name for u in core.store.accounts.list_users(scope)},
            {s.name for s in core.store.sites.list() if s.institution == scope},
        )
    return core.store.audit.list(since=since, who=who, limit=limit or 1000, callers=callers, institution=scope or "")


def revoke_user(core: Core, name: str) -> int:
    """Every token of the user stops working at once."""
    return core.store.accounts.revoke("user", name, core.clock.now())


def revoke_site(core: Core, name: str) -> int:
    """The site's credential stops working, and its open stream is cut now, not at its
    next reconnect; its runs are requeued when its lease runs out, like a lost site's."""
    revoked = core.store.accounts.revoke("site", name, core.clock.now())
    core.sessions.drop(name)
    return revoked


def rotate_token(core: Core, caller: Principal, bearer: str) -> tuple[str, float]:
    """A new token for the caller, with the old one's lifetime counted afresh from now
    (a 90-day user token is good for 90 days more); the old one is revoked."""
    token = new_token("site" if caller.role is Role.SITE else "user")
    accounts = core.store.accounts
    expires_at = accounts.rotate(accounts.hash(bearer), accounts.hash(token), core.clock.now())
    return token, expires_at


def whoami(caller: Principal) -> Principal:
    return caller
