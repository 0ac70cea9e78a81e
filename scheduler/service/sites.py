"""A site's side of the federation: joining, its session, its reports."""
from __future__ import annotations

from scheduler.auth import hash_token, new_token
from scheduler.commands import Command, RunReport
from scheduler.core import Core
from scheduler.domain import Inventory, NotFound, Principal
from scheduler.store.accounts import JoinGrant
from scheduler.validation import check_digest


def join(core: Core, join_token: str) -> tuple[JoinGrant, str]:
    """Redeem a one-time join token; returns the site's new bearer credential."""
    site_token = new_token("site")
    grant = core.store.accounts.redeem_join_token(hash_token(join_token.strip()),
                                                  hash_token(site_token), core.clock.now())
    return grant, site_token


def site_connected(core: Core, site: str, inventory: Inventory, reports: list[RunReport]) -> list[Command]:
    """The site's Hello: record its inventory, then level its runs with ours."""
    now = core.clock.now()
    core.store.sites.connected(site, inventory, now)
    commands = core.store.runs.reconcile_site(site, reports, now)
    core.cycle.trigger()
    return commands


def site_reported(core: Core, site: str, report: RunReport) -> list[Command]:
    commands = core.store.runs.apply_report(site, report, core.clock.now())
    if report.state.terminal:
        core.cycle.trigger()  # GPUs were freed
    return commands


def site_inventory(core: Core, site: str, inventory: Inventory) -> None:
    core.store.sites.update_inventory(site, inventory, core.clock.now())
    core.cycle.trigger()


def site_heartbeat(core: Core, site: str) -> None:
    core.store.sites.seen(site, core.clock.now())


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
