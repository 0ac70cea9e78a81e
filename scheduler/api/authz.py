"""Who may call what, on what: one declarative table, enforced by one interceptor.

For every RPC, `POLICY` gives each role a scope, and says how to find the
institution the request acts on:

- ANY: the role may call it on anything (an admin, or a read open to all);
- OWN_INSTITUTION: the target the request names (an institution, user, site, project
  or job) must belong to the caller's institution; a request that names none acts on
  the caller's own institution, and its service narrows listings to it (`access.py`);
- SELF: the call acts on the caller itself (its own token, a site's own stream), and a
  target it names must be the caller;
- a role absent from an RPC's rule may not call it at all (PERMISSION_DENIED).

A target out of the caller's reach is answered exactly as one that does not exist,
so nobody learns what other institutions have: NOT_FOUND "no job 'x'" for jobs (a
researcher's jobs of other institutions do not exist for them), PERMISSION_DENIED
naming the caller's own institution for everything else. Admin users belong to no
institution: they are the federation's, which only an admin acts on.

Listing filters (which jobs, users, tokens or audit lines a caller sees) and the
aggregate-only views of other institutions live in `minga.scheduler.service.access`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minga.common.domain import NotFound, PermissionDenied, Principal, Role
from minga.scheduler.api.malformed import Malformed
from minga.v1 import common_pb2


class Scope(enum.Enum):
    ANY = "any"
    OWN_INSTITUTION = "own institution"
    SELF = "self"


ANY, OWN, SELF = Scope.ANY, Scope.OWN_INSTITUTION, Scope.SELF
FEDERATION = "federation"  # a target kind no institution owns: admins only

# (kind, key) of what a request acts on, or None when it names nothing.
Target = tuple[str, str]
TargetOf = Callable[[Any], Target | None]
# The institution owning (kind, key), or None if there is no such thing.
OwnerLookup = Callable[[str, str], str | None]


def named(kind: str, attribute: str, optional: bool = False) -> TargetOf:
    """The target is the `kind` named by the request's `attribute`. Left empty, it names
    nothing anyone owns; unless `optional`, where empty means "the caller's own"."""

    def target(request: Any) -> Target | None:
        key = getattr(request, attribute)
        return None if optional and not key else (kind, key)

    return target


def _new_user(request: Any) -> Target:
    """A new admin belongs to the federation; anyone else to the institution given."""
    admin = request.role == common_pb2.ROLE_ADMIN
    return (FEDERATION, request.name) if admin else ("institution", request.institution)


def _weighted(request: Any) -> Target:
    """Project and user weights are their institution's business (a user leaf
    '<institution>/<project>/<user>' belongs to its project's); country and institution
    weights shape the whole federation's shares."""
    if request.kind == "project":
        return ("project", request.id)
    if request.kind == "user":
        return ("project", request.id.rpartition("/")[0])
    return (FEDERATION, f"{request.kind} {request.id}")


def _limited(request: Any) -> Target:
    """An account's limits are its project's institution's business ("inst/project[/user]")."""
    return ("project", "/".join(request.limits.id.split("/")[:2]))


@dataclass(frozen=True)
class Rule:
    scopes: Mapping[Role, Scope] = field(default_factory=dict)
    target: TargetOf | None = None
    public: bool = False  # no caller at all (Join takes a join token in its request)


_ROLE_NAMES = {
    "admin": Role.ADMIN,
    "inst_admin": Role.INSTITUTION_ADMIN,
    "researcher": Role.RESEARCHER,
    "site": Role.SITE,
}


def rule(target: TargetOf | None = None, /, **scopes: Scope) -> Rule:
    """A rule giving each role named (admin, inst_admin, researcher, site) its scope."""
    return Rule({_ROLE_NAMES[name]: scope for name, scope in scopes.items()}, target)


EVERYONE = dict(admin=ANY, inst_admin=ANY, researcher=ANY)
INSTITUTION = dict(admin=ANY, inst_admin=OWN)  # its own institution's, for an institution-admin
RESEARCH = dict(admin=ANY, inst_admin=OWN, researcher=OWN)
ADMIN_ONLY = dict(admin=ANY)
_site = named("site", "name")

POLICY: dict[str, Rule] = {
    "/minga.v1.SiteService/Join": Rule(public=True),
    "/minga.v1.SiteService/Connect": rule(site=SELF),
    "/minga.v1.SiteService/FetchPackage": rule(site=SELF),
    "/minga.v1.SiteService/FetchPackageStream": rule(site=SELF),
    "/minga.v1.SiteService/RenewCertificate": rule(site=SELF),  # site port: the certificate names the site
    "/minga.v1.JobService/SubmitJob": rule(**RESEARCH),  # charged to the caller's institution
    "/minga.v1.JobService/GetJob": rule(named("job", "job_id"), **RESEARCH),
    "/minga.v1.JobService/ListJobs": rule(**RESEARCH),
    "/minga.v1.JobService/CancelJob": rule(named("job", "job_id"), **RESEARCH),
    "/minga.v1.JobService/GetJobLogs": rule(named("job", "job_id"), **RESEARCH),
    "/minga.v1.JobService/HasPackage": rule(**EVERYONE),  # content-addressed, no owner
    "/minga.v1.JobService/UploadPackage": rule(**EVERYONE),
    "/minga.v1.JobService/UploadPackageStream": rule(**EVERYONE),
    "/minga.v1.JobService/GetPackageLimits": rule(**EVERYONE),
    "/minga.v1.JobService/GetJobArray": rule(named("array", "job_id"), **RESEARCH),
    "/minga.v1.JobService/CancelJobArray": rule(named("array", "job_id"), **RESEARCH),
    "/minga.v1.AdminService/AddInstitution": rule(**ADMIN_ONLY),
    "/minga.v1.AdminService/ListInstitutions": rule(**EVERYONE),
    "/minga.v1.AdminService/AddUser": rule(_new_user, **INSTITUTION),
    "/minga.v1.AdminService/ListUsers": rule(**INSTITUTION),
    "/minga.v1.AdminService/RevokeUser": rule(named("user", "name"), **INSTITUTION),
    "/minga.v1.AdminService/ListTokens": rule(
        named("owner", "owner", optional=True), admin=ANY, inst_admin=OWN, researcher=SELF, site=SELF
    ),
    "/minga.v1.AdminService/CreateSiteToken": rule(named("institution", "institution"), **INSTITUTION),
    "/minga.v1.AdminService/ListSites": rule(**EVERYONE),
    "/minga.v1.AdminService/CordonSite": rule(_site, **INSTITUTION),
    "/minga.v1.AdminService/UncordonSite": rule(_site, **INSTITUTION),
    "/minga.v1.AdminService/DrainSite": rule(_site, **INSTITUTION),
    "/minga.v1.AdminService/RevokeSite": rule(_site, **INSTITUTION),
    "/minga.v1.AdminService/SetSiteLabels": rule(_site, **INSTITUTION),
    "/minga.v1.AdminService/SetLendingPolicy": rule(named("site", "site"), **INSTITUTION),
    "/minga.v1.AdminService/GetLendingPolicy": rule(**EVERYONE),  # who may borrow is no secret
    "/minga.v1.AdminService/ListAudit": rule(**INSTITUTION),  # its own users' and sites' calls
    "/minga.v1.AdminService/RotateToken": rule(admin=SELF, inst_admin=SELF, researcher=SELF, site=SELF),
    "/minga.v1.AdminService/CreateWebhookSecret": rule(admin=SELF, inst_admin=SELF, researcher=SELF),
    "/minga.v1.AdminService/WhoAmI": rule(admin=SELF, inst_admin=SELF, researcher=SELF, site=SELF),
    "/minga.v1.AdminService/ShowQuotas": rule(**EVERYONE),  # aggregates only
    "/minga.v1.AdminService/UsageReport": rule(**EVERYONE),  # aggregates only
    "/minga.v1.AdminService/AddProject": rule(named("institution", "institution"), **INSTITUTION),
    "/minga.v1.AdminService/ListProjects": rule(**EVERYONE),
    "/minga.v1.AdminService/SetWeight": rule(_weighted, **INSTITUTION),
    "/minga.v1.AdminService/GetPolicy": rule(**EVERYONE),
    "/minga.v1.AdminService/SetPolicy": rule(**ADMIN_ONLY),
    "/minga.v1.AdminService/SetGuarantee": rule(**ADMIN_ONLY),  # federation-wide shares
    "/minga.v1.AdminService/SetLimits": rule(**ADMIN_ONLY),
    "/minga.v1.AdminService/SetAccountLimits": rule(_limited, **INSTITUTION),
    "/minga.v1.AdminService/ListAccountLimits": rule(**EVERYONE),  # narrowed to what the caller may see
    "/minga.v1.AdminService/GetCarbon": rule(**EVERYONE),  # public figures (docs/carbon.md)
    "/minga.v1.AdminService/SetCarbon": rule(**ADMIN_ONLY),
    "/minga.v1.AdminService/BrokerStatus": rule(admin=ANY, inst_admin=ANY, researcher=ANY, site=ANY),
}

# Which roles may call each RPC at all (None: public); a view of POLICY.
RPC_ROLES: dict[str, frozenset[Role] | None] = {
    method: None if r.public else frozenset(r.scopes) for method, r in POLICY.items()
}

# What a standby broker still serves; it refuses every other call (UNAVAILABLE, naming the leader).
STANDBY_RPCS = frozenset({"/minga.v1.AdminService/BrokerStatus"})
MAX_KEY = 256  # longer names exist nowhere; no need to look them up


def authorize(method: str, caller: Principal | None, request: Any, owner_of: OwnerLookup) -> None:
    """The table's verdict on one call; raises PermissionDenied (or NotFound for a job
    out of reach). `request` is the decoded request, or an iterator for a client stream
    (no streaming RPC names a target)."""
    policy = POLICY[method]
    if policy.public or caller is None:
        return
    scope = policy.scopes.get(caller.role)
    name = method.rsplit("/", 1)[-1]
    if scope is None:
        raise PermissionDenied(f"role {caller.role.value} may not call {name}")
    if scope is ANY or policy.target is None:
        return
    if isinstance(request, Malformed):
        raise request.refuse()
    if not hasattr(request, "DESCRIPTOR"):
        return
    target = policy.target(request)
    if target is None:
        return
    kind, key = target
    if scope is SELF:
        me = (caller.site, ("site", "owner")) if caller.role is Role.SITE else (caller.name, ("user", "owner"))
        allowed = key == me[0] and kind in me[1]
    else:
        allowed = bool(caller.institution) and _owner(owner_of, kind, key) == caller.institution
    if allowed:
        return
    if kind == "job":
        raise NotFound(f"no job {key!r}")
    if kind == "array":
        raise NotFound(f"no job array {key!r}")
    whose = "its own" if scope is SELF else f"institution {caller.institution!r}'s"
    raise PermissionDenied(
        f"role {caller.role.value} may call {name} only on {whose} "
        f"{'users and sites' if kind == FEDERATION else kind + 's'}; {key[:64]!r} is not one"
    )


def _owner(owner_of: OwnerLookup, kind: str, key: str) -> str | None:
    if kind == FEDERATION or not key or len(key) > MAX_KEY or "\x00" in key:
        return None
    return owner_of(kind, key)
