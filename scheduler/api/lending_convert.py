"""A site's lending policy as the admin API answers it (the policy itself: minga.common.wire.lending)."""

from __future__ import annotations

from minga.common.lending import LendingPolicy
from minga.common.wire.lending import policy_from_pb, policy_to_pb
from minga.scheduler.service.lending import SiteLending
from minga.v1 import admin_pb2

__all__ = ["policy_from_pb", "policy_to_pb", "site_lending_to_pb"]


def site_lending_to_pb(s: SiteLending) -> admin_pb2.LendingPolicyResponse:
    return admin_pb2.LendingPolicyResponse(
        site=s.site,
        institution=s.institution,
        has_policy=s.policy is not None,
        policy=policy_to_pb(s.policy or LendingPolicy()),
        open_now=s.open_now,
    )
