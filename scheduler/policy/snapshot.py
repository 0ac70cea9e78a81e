"""The policy's input and output values, re-exported from their neutral homes
(minga.common.snapshot, minga.common.shares), so policy modules import them from one place."""

from minga.common.shares import DEFAULT_MODEL_WEIGHTS, InstitutionShare, ProjectShare, ShareSettings
from minga.common.snapshot import Decisions, Placement, Preemption, Snapshot, Waiting

__all__ = [
    "DEFAULT_MODEL_WEIGHTS",
    "Decisions",
    "InstitutionShare",
    "Placement",
    "Preemption",
    "ProjectShare",
    "ShareSettings",
    "Snapshot",
    "Waiting",
]
