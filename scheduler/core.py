"""What every service function needs, passed explicitly rather than global."""

from __future__ import annotations

from dataclasses import dataclass

from minga.common.clock import Clock, IdGenerator
from minga.scheduler.cycle import SchedulingCycle
from minga.scheduler.enrollment import Enrollment
from minga.scheduler.leases import SiteLeases
from minga.scheduler.sessions import SessionRegistry
from minga.scheduler.store import Store
from minga.scheduler.validation import MAX_PACKAGE_BYTES


@dataclass
class Core:
    store: Store
    clock: Clock
    ids: IdGenerator
    sessions: SessionRegistry
    cycle: SchedulingCycle
    leases: SiteLeases
    enrollment: Enrollment | None = None  # None: no federation CA, sites hold bearer tokens
    max_package_bytes: int = MAX_PACKAGE_BYTES  # the largest working-dir package accepted
