"""The pure scheduling policy: no IO, no clock, no randomness, no ORM rows.

`schedule(snapshot, now)` is the only entry point the broker's cycle and the
simulator call. The quota view reads `quota_rows`, `institution_factors` and
`entitlements` from here.
"""

from minga.common.shares import InstitutionShare, ProjectShare, ShareSettings, model_weight
from minga.common.snapshot import Decisions, Placement, Preemption, Snapshot, Waiting
from minga.scheduler.policy.entitlement import Entitlements, build_tree, entitlements
from minga.scheduler.policy.fairshare import fair_tree_order, institution_factors, project_factors
from minga.scheduler.policy.guarantees import QuotaRow, guarantees, quota_rows
from minga.scheduler.policy.schedule import schedule

__all__ = [
    "Decisions",
    "Entitlements",
    "InstitutionShare",
    "Placement",
    "Preemption",
    "ProjectShare",
    "QuotaRow",
    "ShareSettings",
    "Snapshot",
    "Waiting",
    "build_tree",
    "entitlements",
    "fair_tree_order",
    "guarantees",
    "institution_factors",
    "model_weight",
    "project_factors",
    "quota_rows",
    "schedule",
]
