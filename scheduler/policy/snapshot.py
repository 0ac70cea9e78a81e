"""The policy's input and output values, re-exported from their neutral homes
(scheduler.snapshot, scheduler.shares_domain), so policy modules import them from one place."""
from scheduler.shares_domain import DEFAULT_MODEL_WEIGHTS, InstitutionShare, ProjectShare, ShareSettings
from scheduler.snapshot import Decisions, Placement, Preemption, Snapshot, Waiting

__all__ = [
    "DEFAULT_MODEL_WEIGHTS", "Decisions", "InstitutionShare", "Placement", "Preemption", "ProjectShare",
    "ShareSettings", "Snapshot", "Waiting",
]
