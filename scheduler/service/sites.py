"""A site's side of the federation: joining, its session, its reports."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minga.common.domain import FailedPrecondition, InvalidArgument, Inventory, NotFound, Principal, RunState
from minga.common.pki import check_csr
from minga.common.site_messages import Command, RunReport
from minga.scheduler.auth import new_token
from minga.scheduler.core import Core
from minga.scheduler.store.accounts import JoinGrant
from minga.scheduler.store.pipeline import PipelinedCommit
from minga.scheduler.validation import (
    check_digest,
    check_health_message,
    check_hello_runs,
    check_inventory,
    check_log_chunk,
    check_run_report,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Joined:
    """What a site gets for its join token: a bearer token, or (with a federation CA)
    a client certificate, the CA and the site port's address."""

    grant: JoinGrant
    site_token: str = ""
    certificate: bytes = b""
    ca_certificate: bytes = b""
    site_endpoint: str = ""


def join(core: Core, join_token: str, csr: bytes = b"") -> Joined:
    """Redeem a one-time join token for the site's credential."""
    now = core.clock.now()
    join_hash = core.store.accounts.hash(join_token.strip())
    enrollment = core.enrollment
    if enrollment is None:  # a CSR is ignored: no CA here, the answer without a certificate says so
        site_token = new_token("site")
        return Joined(
            core.store.accounts.redeem_join_token(join_hash, core.store.accounts.hash(site_token), now),
            site_token=site_token,
        )
    if not csr:
        raise InvalidArgument(
            "csr: this broker enrolls sites with certificates; the join request "
            "needs a CSR (use `minga site join` of this minga version)"
        )
    check_csr(csr)  # before the token is spent, so a broken CSR does not burn it
    serial, key = enrollment.new_serial()
    grant = core.store.accounts.redeem_join_token(join_hash, key, now, enrollment.expires_at(now))
    cert = enrollment.certify(csr, grant.site, grant.institution, grant.country, now, serial)
    return Joined(grant, certificate=cert, ca_certificate=enrollment.ca.pem, site_endpoint=enrollment.site_endpoint)


def renew_certificate(core: Core, caller: Principal, csr: bytes) -> bytes:
    """A fresh certificate for the site the caller's certificate names, for a new key."""
    enrollment = core.enrollment
    if enrollment is None:
        raise FailedPrecondition("this broker has no federation CA: sites hold bearer tokens")
    check_csr(csr)
    now = core.clock.now()
    serial, key = enrollment.new_serial()
    core.store.accounts.add_site_certificate(caller.site, key, now, enrollment.expires_at(now))
    country = core.store.sites.get(caller.site).country
    return enrollment.certify(csr, caller.site, caller.institution, country, now, serial)


def site_connected(
    core: Core, site: str, inventory: Inventory, reports: list[RunReport], ray_down: str | None = None
) -> list[Command]:
    """The site's Hello: a fresh lease, its inventory, then its runs levelled with ours.
    A site whose Ray cluster is down (`ray_down` says why) cannot list its runs: it is
    DEGRADED and its runs are requeued instead."""
    check_inventory(inventory)
    check_hello_runs(reports)
    if ray_down is not None:
        check_health_message(ray_down)
    now = core.clock.now()
    core.leases.connected(site)
    # An agent whose Ray is down sends the last inventory it knew, or an empty one if it
    # knew none: that empty one is no news, so the site's last reported inventory stays.
    known = None if ray_down is not None and inventory == Inventory() else inventory
    core.store.sites.connected(site, known, now)
    if ray_down is not None:
        core.store.runs.site_health(site, True, ray_down, now)
        commands: list[Command] = []
    else:
        commands = core.store.runs.reconcile_site(site, reports, now)
    core.cycle.trigger()
    return commands


def site_alive(core: Core, site: str) -> bool:
    """Any message renews the site's lease. False once the lease has expired: the
    session must end, so that the agent starts over with a Hello."""
    return core.leases.renew(site)


class SiteReports:
    """What the sites report about their runs, from every stream at once, applied in
    batches: one transaction per batch (group commit, as a database does for its log)
    and at most one cycle per batch. Each caller still gets its own commands back.

    A stream's reader does not wait for its reports (`report_async`): it reads on, and
    the next batch holds whatever every stream sent meanwhile (store/pipeline.py). The
    reports of one stream are applied in the order it sent them, and before anything
    else it sent after them (the reader waits for its last ticket first)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.committer: PipelinedCommit[tuple[str, RunReport], list[Command]] = PipelinedCommit(
            self._apply, name="site-reports"
        )
        self._lock = threading.Lock()
        self._last_ticket: dict[str, int] = {}  # each site's newest queued report

    def report(self, site: str, report: RunReport) -> list[Command]:
        """Apply one report of `site` and wait: the commands it gets back (e.g. stop a stale run)."""
        check_run_report(report.run_id, report.message)
        return self.committer.submit((site, report))

    def report_async(
        self,
        site: str,
        report: RunReport,
        done: Callable[[list[Command] | BaseException], None],
        skip: Callable[[], bool] | None = None,
    ) -> int:
        """Queue one report of `site` (checked at once: a malformed one raises here);
        `done` gets its commands, or its error, once its batch is committed. Its ticket."""
        check_run_report(report.run_id, report.message)
        with self._lock:  # tickets of one site in increasing order
            ticket = self.committer.submit_async((site, report), done, skip)
            self._last_ticket[site] = ticket
        return ticket

    def wait(self, ticket: int) -> None:
        """Until the report of `ticket` and every one queued before it are applied."""
        self.committer.wait(ticket)

    def wait_site(self, site: str) -> None:
        """Until every report queued for `site` so far is applied (a new session's
        Hello must not be overtaken by the reports of the stream it replaces)."""
        with self._lock:
            ticket = self._last_ticket.pop(site, 0)
        self.committer.wait(ticket)

    def _apply(self, batch: Sequence[tuple[str, RunReport]]) -> list[list[Command] | Exception]:
        core = self.core
        outcomes = core.store.runs.apply_reports(batch, core.clock.now())
        if any(r.state.terminal or r.state is RunState.UNKNOWN for _, r in batch):
            core.cycle.trigger()  # GPUs were freed
        return outcomes


def site_inventory(core: Core, site: str, inventory: Inventory) -> None:
    core.store.sites.update_inventory(site, check_inventory(inventory), core.clock.now())
    core.cycle.trigger()


def site_health(core: Core, site: str, ray_down: bool, message: str, refusing: bool = False) -> None:
    """The agent's view of its own Ray cluster changed: down, refusing new runs, or well."""
    check_health_message(message)
    requeued = core.store.runs.site_health(site, ray_down, message, core.clock.now(), refusing)
    if ray_down or refusing:
        log.warning("site %s degraded (%s); %d run(s) requeued", site, message, requeued)
    core.cycle.trigger()


def site_log(core: Core, site: str, run_id: str, offset: int, data: bytes) -> None:
    check_log_chunk(run_id, offset, data)
    core.store.blobs.append_log(site, run_id, offset, data)


def site_disconnected(core: Core, site: str) -> None:
    core.store.sites.disconnected(site, core.clock.now())
    core.cycle.trigger()


def fetch_package(core: Core, caller: Principal, digest: str) -> bytes:
    """A site may fetch only the packages of runs leased to it."""
    check_digest("digest", digest)
    if not core.store.runs.site_needs_package(caller.site, digest):
        raise NotFound(f"no run leased to site {caller.site!r} uses package {digest}")
    return core.store.blobs.get_package(digest)
