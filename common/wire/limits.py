"""Limits per user and per project on the wire: `AccountLimits` (absent: unlimited)."""

from __future__ import annotations

from minga.common.limits import UNLIMITED, AccountLimit
from minga.v1 import admin_pb2


def account_limit_to_pb(lim: AccountLimit) -> admin_pb2.AccountLimits:
    """A stored limit: each unlimited one is left absent."""
    return admin_pb2.AccountLimits(
        kind=lim.kind,
        id=lim.key,
        max_gpus=lim.max_gpus,
        max_pending=lim.max_pending,
        max_walltime_seconds=lim.max_walltime_seconds,
    )


def account_limit_from_pb(pb: admin_pb2.AccountLimits) -> AccountLimit:
    return AccountLimit(
        kind=pb.kind,
        key=pb.id,
        max_gpus=pb.max_gpus if pb.HasField("max_gpus") else None,
        max_pending=pb.max_pending if pb.HasField("max_pending") else None,
        max_walltime_seconds=pb.max_walltime_seconds if pb.HasField("max_walltime_seconds") else None,
    )


def limit_change_to_pb(
    kind: str, key: str, max_gpus: int | None, max_pending: int | None, max_walltime_seconds: int | None
) -> admin_pb2.SetAccountLimitsRequest:
    """A change: None leaves a limit as it is, UNLIMITED (-1) clears it."""
    return admin_pb2.SetAccountLimitsRequest(
        limits=admin_pb2.AccountLimits(
            kind=kind,
            id=key,
            max_gpus=max_gpus,
            max_pending=max_pending,
            max_walltime_seconds=max_walltime_seconds,
        )
    )


__all__ = ["UNLIMITED", "account_limit_from_pb", "account_limit_to_pb", "limit_change_to_pb"]
