"""A broker's leadership status (common/leadership.py) to and from `BrokerStatusResponse`."""

from __future__ import annotations

from minga.common.leadership import LeadershipStatus
from minga.v1 import admin_pb2


def leadership_to_pb(s: LeadershipStatus) -> admin_pb2.BrokerStatusResponse:
    return admin_pb2.BrokerStatusResponse(
        address=s.address,
        leading=s.leading,
        role=s.role,
        leader_address=s.leader_address,
        leading_since=s.leading_since,
    )


def leadership_from_pb(pb: admin_pb2.BrokerStatusResponse) -> LeadershipStatus:
    return LeadershipStatus(
        address=pb.address,
        leading=pb.leading,
        role=pb.role,
        leader_address=pb.leader_address,
        leading_since=pb.leading_since,
    )
