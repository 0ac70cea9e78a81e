"""The wire's enums (common.proto) to and from the domain's.

proto3 enums are open: a number the broker does not know is the sender's mistake,
refused as InvalidArgument with the field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from minga.common.domain import InvalidArgument, JobState, Role, RunState, SiteState
from minga.v1 import common_pb2

_D = TypeVar("_D")

_JOB_STATES: dict[JobState, common_pb2.JobState] = {
    JobState.PENDING: common_pb2.JOB_STATE_PENDING,
    JobState.LEASED: common_pb2.JOB_STATE_LEASED,
    JobState.RUNNING: common_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: common_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: common_pb2.JOB_STATE_FAILED,
    JobState.CANCELLING: common_pb2.JOB_STATE_CANCELLING,
    JobState.CANCELLED: common_pb2.JOB_STATE_CANCELLED,
}
_RUN_STATES: dict[RunState, common_pb2.RunState] = {
    RunState.STARTING: common_pb2.RUN_STATE_STARTING,
    RunState.RUNNING: common_pb2.RUN_STATE_RUNNING,
    RunState.SUCCEEDED: common_pb2.RUN_STATE_SUCCEEDED,
    RunState.FAILED: common_pb2.RUN_STATE_FAILED,
    RunState.STOPPED: common_pb2.RUN_STATE_STOPPED,
    RunState.UNKNOWN: common_pb2.RUN_STATE_UNKNOWN,
    RunState.LOST: common_pb2.RUN_STATE_LOST,
}
_SITE_STATES: dict[SiteState, common_pb2.SiteState] = {
    SiteState.READY: common_pb2.SITE_STATE_READY,
    SiteState.CORDONED: common_pb2.SITE_STATE_CORDONED,
    SiteState.LOST: common_pb2.SITE_STATE_LOST,
    SiteState.DRAINING: common_pb2.SITE_STATE_DRAINING,
    SiteState.DEGRADED: common_pb2.SITE_STATE_DEGRADED,
    SiteState.CONNECTING: common_pb2.SITE_STATE_CONNECTING,
}
_ROLES: dict[Role, common_pb2.Role] = {
    Role.ADMIN: common_pb2.ROLE_ADMIN,
    Role.RESEARCHER: common_pb2.ROLE_RESEARCHER,
    Role.SITE: common_pb2.ROLE_SITE,
    Role.INSTITUTION_ADMIN: common_pb2.ROLE_INSTITUTION_ADMIN,
}


def _from_pb(table: Mapping[_D, int], value: int, field: str) -> _D:
    for domain, wire in table.items():
        if wire == value:
            return domain
    raise InvalidArgument(f"{field} {value} is not a known value")


def job_state_to_pb(state: JobState) -> common_pb2.JobState:
    return _JOB_STATES[state]


def job_state_from_pb(value: int) -> JobState | None:
    """A job state filter: UNSPECIFIED is none."""
    if value == common_pb2.JOB_STATE_UNSPECIFIED:
        return None
    return _from_pb(_JOB_STATES, value, "state")


def run_state_to_pb(state: RunState) -> common_pb2.RunState:
    return _RUN_STATES[state]


def run_state_from_pb(value: int) -> RunState:
    """A run state a site may report: LOST is the broker's own verdict, never a report."""
    if value in (common_pb2.RUN_STATE_UNSPECIFIED, common_pb2.RUN_STATE_LOST):
        raise InvalidArgument(f"run state {value} may not be reported")
    return _from_pb(_RUN_STATES, value, "run state")


def site_state_to_pb(state: SiteState) -> common_pb2.SiteState:
    return _SITE_STATES[state]


def site_state_from_pb(value: int) -> SiteState:
    return _from_pb(_SITE_STATES, value, "site state")


def role_to_pb(role: Role) -> common_pb2.Role:
    return _ROLES[role]


def role_from_pb(value: int) -> Role | None:
    """A role as a request gives it: UNSPECIFIED is none (the default applies)."""
    if value == common_pb2.ROLE_UNSPECIFIED:
        return None
    return known_role_from_pb(value)


def known_role_from_pb(value: int) -> Role:
    """The role of a user, a token or a caller: always one, so UNSPECIFIED is refused too."""
    return _from_pb(_ROLES, value, "role")
