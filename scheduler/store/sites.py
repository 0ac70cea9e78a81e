"""Sites: connection, health, inventory, and the admin's cordon or drain."""

from __future__ import annotations

import builtins
import json

from sqlmodel import Session, col, select

from minga.common.domain import Inventory, NotFound, Site, SiteState
from minga.scheduler.store.base import Database, site_from_row
from minga.scheduler.store.generations import Cached
from minga.scheduler.store.json_columns import inventory_to_json
from minga.scheduler.store.models import RunRow, SiteRow

RECENT_TTL = 2.0  # seconds another broker's change to a site may go unseen by `recent`


class SitesRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._recent: Cached[list[Site]] = Cached(db.generations, (SiteRow.__tablename__,), RECENT_TTL)

    def get(self, name: str) -> Site:
        with self.db.read() as s:
            row = s.get(SiteRow, name)
            if row is None:
                raise NotFound(f"no site {name!r}")
            return site_from_row(row)

    def list(self) -> list[Site]:
        with self.db.read() as s:
            return [site_from_row(r) for r in s.exec(select(SiteRow).order_by(SiteRow.name)).all()]

    def recent(self, now: float) -> builtins.list[Site]:
        """`list()`, shared by the calls of the last RECENT_TTL seconds until a site changes:
        what a submit's feasibility check reads, a thousand times a second in a burst."""
        return self._recent.get(None, now, self.list)

    def gpus_in_use(self) -> dict[str, dict[str, int]]:
        """site -> model -> GPUs held by live runs."""
        used: dict[str, dict[str, int]] = {}
        with self.db.read() as s:
            for run in s.exec(select(RunRow).where(col(RunRow.live))).all():
                if run.gpus:
                    per = used.setdefault(run.site, {})
                    per[run.gpu_model] = per.get(run.gpu_model, 0) + run.gpus
        return used

    def connected(self, name: str, inventory: Inventory | None, now: float) -> None:
        """A Hello; `inventory` None keeps the last one reported (a site whose Ray is down
        and whose agent knows no inventory must not read as a site with no GPUs)."""
        with self.db.tx() as s:
            row = self._row(s, name)
            row.connected = True
            if inventory is not None:
                row.inventory_json = inventory_to_json(inventory)
            row.last_seen = now
            row.state, row.health_message = SiteState.READY.value, ""  # a Hello that says otherwise follows
            s.add(row)

    def update_inventory(self, name: str, inventory: Inventory, now: float) -> None:
        with self.db.tx() as s:
            row = self._row(s, name)
            row.inventory_json = inventory_to_json(inventory)
            row.last_seen = now
            s.add(row)

    def disconnected(self, name: str, now: float) -> None:
        with self.db.tx() as s:
            row = self._row(s, name)
            row.connected = False
            row.last_seen = now
            s.add(row)

    def mark_all_disconnected(self) -> None:
        """At broker start no stream is open yet, whatever the store says."""
        with self.db.tx() as s:
            for row in s.exec(select(SiteRow).where(col(SiteRow.connected))).all():
                row.connected = False
                s.add(row)

    def set_labels(self, name: str, labels: dict[str, str]) -> Site:
        with self.db.tx() as s:
            row = self._row(s, name)
            row.labels_json = json.dumps(dict(sorted(labels.items())))
            s.add(row)
            return site_from_row(row)

    def set_admin_state(self, name: str, state: SiteState | None) -> Site:
        """CORDONED, DRAINING, or None to take new runs again; health is the site's own."""
        if state not in (None, SiteState.CORDONED, SiteState.DRAINING):
            raise ValueError(f"{state} is not an admin state")
        with self.db.tx() as s:
            row = self._row(s, name)
            row.admin_state = state.value if state else ""
            s.add(row)
            return site_from_row(row)

    @staticmethod
    def _row(s: Session, name: str) -> SiteRow:
        row = s.get(SiteRow, name)
        if row is None:
            raise NotFound(f"no site {name!r}")
        return row
