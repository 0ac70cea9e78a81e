"""Admin calls on site owners' lending policies (`common/lending.py` has the rules).

Setting a policy replaces the site's whole policy, so what `show` prints is exactly what
the policy enforces. The scheduling cycle runs right after a change: guests already on a
site whose window is now closed are preempted at once, not at the next tick.
"""

from __future__ import annotations

from minga.common.domain import InvalidArgument, Principal
from minga.common.lending import LendingPolicy, SiteLending, check_policy, lending_open
from minga.scheduler.core import Core


def set_lending_policy(core: Core, caller: Principal, site: str, policy: LendingPolicy | None) -> SiteLending:
    """Replace (or with None, remove) the site's policy, checked and normalized. Who may
    is the authorization table's business: an admin anywhere, an institution-admin on its
    own sites."""
    if policy is not None:
        try:
            policy = check_policy(policy)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
    now = core.clock.now()
    owner = core.store.lending.set(site, policy, now, caller.name)
    core.cycle.trigger()
    return SiteLending(site, owner, policy, policy is None or lending_open(policy, now))


def get_lending_policy(core: Core, site: str) -> SiteLending:
    """Anyone may read it: who may borrow a site, and when, is no secret."""
    owner, policy = core.store.lending.get(site)
    return SiteLending(site, owner, policy, policy is None or lending_open(policy, core.clock.now()))


def all_lending_policies(core: Core) -> dict[str, LendingPolicy]:
    """Every site's policy by site name; a site without one lends to anyone, any time."""
    return dict(core.store.lending.all())
