"""What each dashboard page shows, read through the same door as the gRPC call that shows it.

Every read first asks the one authorization table (`minga.scheduler.api.authz.POLICY`)
about the RPC it stands for, with the request that RPC would carry, then calls the same
service function the servicer calls, as the signed-in caller. A page therefore shows
exactly what `minga` would show that person: a researcher their institution's jobs, and
other institutions only as aggregates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from minga.common.audit import AuditEntry
from minga.common.domain import Job, JobState, Principal, Run, SiteState
from minga.common.lending import LendingPolicy
from minga.common.quotas import QuotaView
from minga.common.site_view import SiteView
from minga.common.snapshot import Snapshot
from minga.common.usage import ShareHistory, UsageReport
from minga.scheduler.api.authz import RPC_ROLES, authorize
from minga.scheduler.core import Core
from minga.scheduler.policy.share_now import snapshot_share_now
from minga.scheduler.service import admin, jobs, lending, shares
from minga.scheduler.service.queue import QueueView, pending_now, queue_view
from minga.scheduler.store.audit import SCHEDULER
from minga.v1 import admin_pb2, job_pb2

JOBS = "/minga.v1.JobService/"
ADMIN = "/minga.v1.AdminService/"
LOG_TAIL_BYTES = 256 * 1024  # a job page shows at most this much of its log; the rest follows live
MAX_JOBS_LISTED = 1000


def permit(core: Core, caller: Principal, rpc: str, request: Any = None) -> None:
    """The table's verdict on `caller` making `rpc` with `request`; raises as the API would."""
    authorize(rpc, caller, request if request is not None else admin_pb2.WhoAmIRequest(), core.store.accounts.owner_of)


def may_call(caller: Principal, rpc: str) -> bool:
    """Whether the caller's role may make `rpc` at all: which pages the menu offers."""
    roles = RPC_ROLES[rpc]
    return roles is None or caller.role in roles


def snapshot_now(core: Core) -> Snapshot:
    """The federation now: the leader's state in memory, or the store while it reloads."""
    state, now = core.cycle.level_state(), core.clock.now()
    return state.snapshot(now) if state else core.store.runs.load_snapshot(now)


@dataclass(frozen=True)
class Overview:
    capacity: int  # GPUs that can hold runs now
    used: int  # GPUs live runs hold
    unavailable: int  # GPUs of sites that take no runs now (lost, degraded, cordoned, draining)
    running: int
    pending: int
    fairness_error: float  # 0..1 (`ShareNow.fairness_error`)
    sites: list[tuple[str, int]]  # (state, sites)
    mine: tuple[int, int] | None  # (running, pending) of the caller's institution; None: admin

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)

    @property
    def utilization(self) -> float:
        return self.used / self.capacity if self.capacity else 0.0


def overview(core: Core, caller: Principal) -> Overview:
    permit(core, caller, ADMIN + "ShowQuotas")  # aggregates, as `minga quota show`
    snapshot = snapshot_now(core)
    _, now = snapshot_share_now(snapshot)
    everything = sum(p.total for s in snapshot.sites for p in s.inventory.gpus)
    used = sum(r.gpus for r in snapshot.live_runs)
    pending = pending_now(core)
    states = Counter(s.state.value for s in snapshot.sites)
    mine = None
    if caller.institution:
        mine = (
            sum(1 for r in snapshot.live_runs if r.institution == caller.institution),
            sum(1 for j in pending if j.institution == caller.institution),
        )
    return Overview(
        capacity=now.capacity,
        used=used,
        unavailable=max(0, everything - now.capacity),
        running=len(snapshot.live_runs),
        pending=len(pending),
        fairness_error=now.fairness_error(),
        sites=[(st.value, states[st.value]) for st in SiteState if states[st.value]],
        mine=mine,
    )


@dataclass(frozen=True)
class FairShare:
    quotas: QuotaView
    history: ShareHistory

    def lending(self) -> dict[str, tuple[int, int, int]]:
        """Per institution, all models: (guaranteed, borrowed, lent) GPUs."""
        sums: dict[str, tuple[int, int, int]] = {}
        for row in self.quotas.rows:
            g, b, lent = sums.get(row.institution, (0, 0, 0))
            sums[row.institution] = (g + row.guarantee, b + row.borrowed, lent + row.lent)
        return sums


def fair_share(core: Core, caller: Principal) -> FairShare:
    permit(core, caller, ADMIN + "ShowQuotas")
    return FairShare(admin.show_quotas(core, True, caller), shares.share_history(core))


@dataclass(frozen=True)
class SiteRow:
    view: SiteView
    lending: LendingPolicy | None  # None: lends to anyone, any time


def sites(core: Core, caller: Principal) -> dict[str, list[SiteRow]]:
    """Every site, by country (sorted), with its lending policy."""
    permit(core, caller, ADMIN + "ListSites")
    permit(core, caller, ADMIN + "GetLendingPolicy")
    policies = lending.all_lending_policies(core)
    grouped: dict[str, list[SiteRow]] = {}
    for view in admin.list_sites(core):
        grouped.setdefault(view.site.country, []).append(SiteRow(view, policies.get(view.site.name)))
    return dict(sorted(grouped.items()))


def queue(core: Core, caller: Principal, offset: int, limit: int) -> QueueView:
    permit(core, caller, JOBS + "ListJobs")
    return queue_view(core, caller, offset, limit)


def job_list(core: Core, caller: Principal, state: JobState | None, search: str) -> list[Job]:
    """The caller's jobs, newest first; `search` matches id, name, owner, project or entrypoint."""
    permit(core, caller, JOBS + "ListJobs")
    found, _ = jobs.list_jobs(core, caller, include_terminal=True, state=state)
    needle = search.strip().lower()
    if needle:
        found = [j for j in found if needle in _haystack(j)]
    return found[:MAX_JOBS_LISTED]


def _haystack(job: Job) -> str:
    return " ".join((job.id, job.spec.name, job.owner, job.spec.project, job.spec.entrypoint)).lower()


@dataclass(frozen=True)
class JobPage:
    job: Job
    runs: list[Run]
    log: str  # the current run's log, its last LOG_TAIL_BYTES
    log_cut: bool  # earlier output was left out
    log_offset: int  # where live follow continues


def job_page(core: Core, caller: Principal, job_id: str) -> JobPage:
    permit(core, caller, JOBS + "GetJob", job_pb2.GetJobRequest(job_id=job_id))
    job = jobs.job_status(core, caller, job_id)
    data, offset = bytearray(), 0
    for _, start, chunk in job_log(core, caller, job_id, 0):
        data += chunk
        offset = start + len(chunk)
    cut = len(data) > LOG_TAIL_BYTES
    text = bytes(data[-LOG_TAIL_BYTES:]).decode(errors="replace")
    return JobPage(job, jobs.job_runs(core, caller, job_id), text, cut, offset)


def check_logs(core: Core, caller: Principal, job_id: str) -> None:
    """Raises as `minga job logs` would be refused (another institution's job: NotFound)."""
    permit(core, caller, JOBS + "GetJobLogs", job_pb2.GetJobLogsRequest(job_id=job_id))
    jobs.get_job(core, caller, job_id)


def job_log(core: Core, caller: Principal, job_id: str, offset: int) -> Iterator[tuple[str, int, bytes]]:
    """(run id, offset, bytes) of the job's current run from `offset`, what is there now."""
    permit(core, caller, JOBS + "GetJobLogs", job_pb2.GetJobLogsRequest(job_id=job_id))
    return jobs.job_logs(core, caller, job_id, False, offset, lambda: True)


def usage(core: Core, caller: Principal, since_seconds: float, by: str) -> UsageReport:
    permit(core, caller, ADMIN + "UsageReport")
    return shares.usage_report(core, since_seconds, by)


def audit(core: Core, caller: Principal, since: float, preemptions_only: bool, limit: int) -> list[AuditEntry]:
    """The newest `limit` audit lines since `since`, newest first; the scheduler's preemptions only, if asked."""
    permit(core, caller, ADMIN + "ListAudit")
    lines = admin.list_audit(core, caller, since, SCHEDULER if preemptions_only else "", limit)
    return lines[::-1]
