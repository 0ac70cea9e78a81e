"""Lending policies between the wire (`admin_pb2.LendingPolicy`) and the domain.

Windows travel as their text ("Mon-Fri 20:00-08:00"): the same grammar the CLI takes,
parsed here so that a bad one is refused with the window named.
"""

from __future__ import annotations

from minga.common.domain import InvalidArgument
from minga.common.lending import LendingPolicy, SiteLending, Window, parse_window
from minga.v1 import admin_pb2


def _windows(field: str, texts: list[str]) -> tuple[Window, ...]:
    try:
        return tuple(parse_window(t) for t in texts)
    except ValueError as exc:
        raise InvalidArgument(f"{field}: {exc}") from exc


def policy_from_pb(pb: admin_pb2.LendingPolicy) -> LendingPolicy:
    return LendingPolicy(
        allow_countries=tuple(pb.allow_countries),
        deny_countries=tuple(pb.deny_countries),
        allow_institutions=tuple(pb.allow_institutions),
        deny_institutions=tuple(pb.deny_institutions),
        max_lent_gpus=None if pb.max_lent_gpus < 0 else pb.max_lent_gpus,
        guest_max_walltime_seconds=pb.guest_max_walltime_seconds,
        timezone=pb.timezone,
        lend_windows=_windows("lend_windows", list(pb.lend_windows)),
        closed_windows=_windows("closed_windows", list(pb.closed_windows)),
        no_env=pb.no_env,
        env_allow=tuple(pb.env_allow),
        no_pip=pb.no_pip,
        pip_allow=tuple(pb.pip_allow),
    )


def policy_to_pb(p: LendingPolicy) -> admin_pb2.LendingPolicy:
    return admin_pb2.LendingPolicy(
        allow_countries=p.allow_countries,
        deny_countries=p.deny_countries,
        allow_institutions=p.allow_institutions,
        deny_institutions=p.deny_institutions,
        max_lent_gpus=-1 if p.max_lent_gpus is None else p.max_lent_gpus,
        guest_max_walltime_seconds=p.guest_max_walltime_seconds,
        timezone=p.timezone,
        lend_windows=[str(w) for w in p.lend_windows],
        closed_windows=[str(w) for w in p.closed_windows],
        no_env=p.no_env,
        env_allow=p.env_allow,
        no_pip=p.no_pip,
        pip_allow=p.pip_allow,
    )


def site_lending_to_pb(s: SiteLending) -> admin_pb2.LendingPolicyResponse:
    """A site without a policy answers `has_policy` false and an empty one."""
    return admin_pb2.LendingPolicyResponse(
        site=s.site,
        institution=s.institution,
        has_policy=s.policy is not None,
        policy=policy_to_pb(s.policy or LendingPolicy()),
        open_now=s.open_now,
    )


def site_lending_from_pb(pb: admin_pb2.LendingPolicyResponse) -> SiteLending:
    return SiteLending(
        site=pb.site,
        institution=pb.institution,
        policy=policy_from_pb(pb.policy) if pb.has_policy else None,
        open_now=pb.open_now,
    )
