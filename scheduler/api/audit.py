"""Which calls the audit log records, and what each acted on.

Every state-changing RPC is in `AUDITED`, with a function naming its target from
the request and the response. The targets are ids and names only: never a token,
a join token, an entrypoint or an environment, so no secret reaches the log.

The interceptor appends each line after the call. A submit's line is the exception:
the store commits it in the job's own transaction (`job_line`), so an acknowledged
submit is never missing from the log, nor logged for a job that was not committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minga.common.audit import AuditEntry
from minga.common.domain import Job, Principal

Target = Callable[[Any, Any], str]
SUBMIT_JOB = "/minga.v1.JobService/SubmitJob"

AUDITED: dict[str, Target] = {
    "/minga.v1.SiteService/Join": lambda q, r: r.site if r is not None else "",
    "/minga.v1.SiteService/RenewCertificate": lambda q, r: "own certificate",
    SUBMIT_JOB: lambda q, r: (r.array.id or r.job.id) if r is not None else "",
    "/minga.v1.JobService/CancelJob": lambda q, r: q.job_id,
    "/minga.v1.JobService/CancelJobArray": lambda q, r: q.job_id,
    "/minga.v1.JobService/UploadPackage": lambda q, r: q.digest,
    "/minga.v1.JobService/UploadPackageStream": lambda q, r: r.digest if r is not None else "",
    "/minga.v1.AdminService/AddInstitution": lambda q, r: q.institution.slug,
    "/minga.v1.AdminService/AddUser": lambda q, r: q.name,
    "/minga.v1.AdminService/CreateSiteToken": lambda q, r: f"{q.institution}/{q.site}",
    "/minga.v1.AdminService/CordonSite": lambda q, r: q.name,
    "/minga.v1.AdminService/UncordonSite": lambda q, r: q.name,
    "/minga.v1.AdminService/DrainSite": lambda q, r: q.name,
    "/minga.v1.AdminService/AddProject": lambda q, r: f"{q.institution}/{q.name}",
    "/minga.v1.AdminService/SetWeight": lambda q, r: f"{q.kind} {q.id}",
    "/minga.v1.AdminService/SetPolicy": lambda q, r: "policy",
    "/minga.v1.AdminService/SetGuarantee": lambda q, r: f"{q.institution} {q.gpu_model}",
    "/minga.v1.AdminService/SetLimits": lambda q, r: q.institution,
    "/minga.v1.AdminService/SetSiteLabels": lambda q, r: q.name,
    "/minga.v1.AdminService/SetLendingPolicy": lambda q, r: f"{q.site} (cleared)" if q.clear else q.site,
    "/minga.v1.AdminService/RevokeUser": lambda q, r: q.name,
    "/minga.v1.AdminService/RevokeSite": lambda q, r: q.name,
    "/minga.v1.AdminService/RotateToken": lambda q, r: "own token",
    "/minga.v1.AdminService/CreateWebhookSecret": lambda q, r: "own webhook secret",
}
MAX_TARGET = 200


def entry(
    method: str,
    at: float,
    principal: Principal | None,
    request: Any,
    response: Any,
    peer: str,
    outcome: str,
    detail: str,
) -> AuditEntry:
    """The log line of one finished call."""
    try:
        target = AUDITED[method](request, response)
    except Exception:  # noqa: BLE001 - a malformed request names nothing; still logged
        target = ""
    return _line(method, at, principal, target, peer, outcome, detail)


def job_line(method: str, at: float, principal: Principal, peer: str) -> Callable[[Job], AuditEntry]:
    """The OK line of a call that answers with a job, given that job: for the store to
    commit in the job's transaction."""
    return lambda job: _line(method, at, principal, job.id, peer, "OK", "")


def _line(
    method: str, at: float, principal: Principal | None, target: str, peer: str, outcome: str, detail: str
) -> AuditEntry:
    return AuditEntry(
        at=at,
        who=principal.name if principal else "",
        role=principal.role.value if principal else "",
        method=method.removeprefix("/minga.v1."),
        target=target[:MAX_TARGET],
        peer=peer,
        outcome=outcome,
        detail=detail,
    )
