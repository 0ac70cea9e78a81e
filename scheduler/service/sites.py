"""A site's side of the federation: joining, its session, its reports."""
from __future__ import annotations

import logging

from scheduler.auth import hash_token, new_token
from scheduler.commands import Command, RunReport
from scheduler.core import Core
from scheduler.domain import Inventory, NotFound, Principal, RunState
from scheduler.store.accounts import JoinGrant
from scheduler.validation import check_digest, check_inventory

log = logging.getLogger(__name__)


def join(core: Core, join_token: str) -> tuple[JoinGrant, str]:
    """Redeem a one-time join token; returns the site's new bearer credential."""
    site_token = new_token("site")
    grant = core.store.accounts.redeem_join_token(hash_token(join_token.strip()),
                                                  hash_token(site_token), core.clock.now())
    return grant, site_token


def site_connected(core: Core, site: str, inventory: Inventory, reports: list[RunReport],
                   ray_down: str | None = None) -> list[Command]:
    """The site's Hello: a fresh lease, its inventory, then its runs levelled with ours.
    A site whose Ray cluster is down (`ray_down` says why) cannot list its runs: it is
    DEGRADED and its runs are requeued instead."""
    check_inventory(inventory)
    now = core.clock.now()
    core.leases.connected(site)
    core.store.sites.connected(site, inventory, now)
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


def site_reported(core: Core, site: str, report: RunReport) -> list[Command]:
    commands = core.store.runs.apply_report(site, report, core.clock.now())
    if report.state.terminal or report.state is RunState.UNKNOWN:
        core.cycle.trigger()  # GPUs were freed
    return commands


def site_inventory(core: Core, site: str, inventory: Inventory) -> None:
    core.store.sites.update_inventory(site, check_inventory(inventory), core.clock.now())
    core.cycle.trigger()


def site_health(core: Core, site: str, ray_down: bool, message: str) -> None:
    """The agent's view of its own Ray cluster changed."""
    requeued = core.store.runs.site_health(site, ray_down, message, core.clock.now())
    if ray_down:
        log.warning("site %s degraded (%s); %d run(s) requeued", site, message, requeued)
    core.cycle.trigger()


def site_log(core: Core, site: str, run_id: str, offset: int, data: bytes) -> None:
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
