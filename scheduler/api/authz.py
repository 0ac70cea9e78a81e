"""Who may call what: one declarative table, enforced by one interceptor.

Resource-level rules (a researcher sees only their institution's jobs, a site
reports only for itself) live in the service functions, which get the caller.
"""
from __future__ import annotations

from scheduler.domain import Role

A, R, S = Role.ADMIN, Role.RESEARCHER, Role.SITE

RPC_ROLES: dict[str, frozenset[Role] | None] = {
    "/minga.v1.SiteService/Join": None,  # takes a one-time join token in the request
    "/minga.v1.SiteService/Connect": frozenset({S}),
    "/minga.v1.SiteService/FetchPackage": frozenset({S}),
    "/minga.v1.JobService/SubmitJob": frozenset({A, R}),
    "/minga.v1.JobService/GetJob": frozenset({A, R}),
    "/minga.v1.JobService/ListJobs": frozenset({A, R}),
    "/minga.v1.JobService/CancelJob": frozenset({A, R}),
    "/minga.v1.JobService/GetJobLogs": frozenset({A, R}),
    "/minga.v1.JobService/HasPackage": frozenset({A, R}),
    "/minga.v1.JobService/UploadPackage": frozenset({A, R}),
    "/minga.v1.AdminService/AddInstitution": frozenset({A}),
    "/minga.v1.AdminService/ListInstitutions": frozenset({A, R}),
    "/minga.v1.AdminService/AddUser": frozenset({A}),
    "/minga.v1.AdminService/ListUsers": frozenset({A}),
    "/minga.v1.AdminService/CreateSiteToken": frozenset({A}),
    "/minga.v1.AdminService/ListSites": frozenset({A, R}),
    "/minga.v1.AdminService/CordonSite": frozenset({A}),
    "/minga.v1.AdminService/UncordonSite": frozenset({A}),
    "/minga.v1.AdminService/DrainSite": frozenset({A}),
    "/minga.v1.AdminService/ListAudit": frozenset({A}),
    "/minga.v1.AdminService/RevokeUser": frozenset({A}),
    "/minga.v1.AdminService/RevokeSite": frozenset({A}),
    "/minga.v1.AdminService/RotateToken": frozenset({A, R, S}),
    "/minga.v1.AdminService/ShowQuotas": frozenset({A, R}),
    "/minga.v1.AdminService/WhoAmI": frozenset({A, R, S}),
    "/minga.v1.AdminService/AddProject": frozenset({A}),
    "/minga.v1.AdminService/ListProjects": frozenset({A, R}),
    "/minga.v1.AdminService/SetWeight": frozenset({A}),
    "/minga.v1.AdminService/GetPolicy": frozenset({A, R}),
    "/minga.v1.AdminService/SetPolicy": frozenset({A}),
    "/minga.v1.AdminService/SetGuarantee": frozenset({A}),
    "/minga.v1.AdminService/SetLimits": frozenset({A}),
    "/minga.v1.AdminService/SetSiteLabels": frozenset({A}),
    "/minga.v1.AdminService/UsageReport": frozenset({A, R}),  # aggregates only
    "/minga.v1.AdminService/BrokerStatus": frozenset({A, R, S}),  # a standby answers it too
}

# What a standby broker still serves; it refuses every other call (UNAVAILABLE, naming the leader).
STANDBY_RPCS = frozenset({"/minga.v1.AdminService/BrokerStatus"})
