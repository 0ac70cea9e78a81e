"""`Store`: the repository interface the broker uses, one attribute per area.

Callers never see SQLModel rows, only domain values.
"""

from __future__ import annotations

from minga.scheduler.store.accounts import AccountsRepo
from minga.scheduler.store.arrays import ArraysRepo
from minga.scheduler.store.audit import AuditRepo
from minga.scheduler.store.base import Database
from minga.scheduler.store.blobs import BlobsRepo
from minga.scheduler.store.carbon import CarbonRepo
from minga.scheduler.store.db import make_engines
from minga.scheduler.store.dependencies import DependenciesRepo
from minga.scheduler.store.jobs import JobsRepo
from minga.scheduler.store.lending import LendingRepo
from minga.scheduler.store.limits import LimitsRepo
from minga.scheduler.store.reports import ReportsRepo
from minga.scheduler.store.runs import RunsRepo
from minga.scheduler.store.shares import SharesRepo
from minga.scheduler.store.sites import SitesRepo
from minga.scheduler.store.webhooks import WebhooksRepo


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db = Database(*make_engines(url))
        self.db.create_schema()
        self.accounts = AccountsRepo(self.db)
        self.jobs = JobsRepo(self.db)
        self.arrays = ArraysRepo(self.db)
        self.dependencies = DependenciesRepo(self.db)
        self.sites = SitesRepo(self.db)
        self.runs = RunsRepo(self.db)
        self.blobs = BlobsRepo(self.db)
        self.shares = SharesRepo(self.db)
        self.reports = ReportsRepo(self.db)
        self.audit = AuditRepo(self.db)
        self.lending = LendingRepo(self.db)
        self.webhooks = WebhooksRepo(self.db)
        self.limits = LimitsRepo(self.db)
        self.carbon = CarbonRepo(self.db)

    def close(self) -> None:
        self.db.dispose()
