"""The pure scheduling policy: no IO, no clock, no randomness, no ORM rows.

`schedule(snapshot, now)` is the only entry point the broker's cycle and the
simulator call.
"""
from scheduler.policy.schedule import schedule
from scheduler.policy.snapshot import (
    Decisions, InstitutionShare, Placement, Preemption, ProjectShare, ShareSettings, Snapshot, Waiting,
)

__all__ = [
    "Decisions", "InstitutionShare", "Placement", "Preemption", "ProjectShare", "ShareSettings",
    "Snapshot", "Waiting", "schedule",
]
