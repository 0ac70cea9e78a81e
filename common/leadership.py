"""Which broker of a standby pair leads, as one broker tells it (`minga broker status`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeadershipStatus:
    """What `AdminService.BrokerStatus` tells about one broker."""

    address: str  # this broker's advertised address
    leading: bool
    role: str  # "leader", "standby" or "unsure" (the leader lost its lock's proof)
    leader_address: str  # as the store records it; "" if none yet
    leading_since: float  # 0.0 if none yet
