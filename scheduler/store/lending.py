"""Site owners' lending policies: one row per site that has one, the policy as JSON.

JSON rather than columns: the policy is read whole (by the snapshot, by the admin's
`show`) and written whole (`set` replaces it), and new rules can join it without a
migration. A policy that no longer parses is a bug, never a reason to stop scheduling:
it is logged and the site keeps to the strictest reading, lending to nobody.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from sqlmodel import Session, select

from minga.common.domain import NotFound
from minga.common.lending import LendingPolicy, Window
from minga.scheduler.store.base import Database
from minga.scheduler.store.models import LendingRow, SiteRow

log = logging.getLogger(__name__)

# A site whose stored policy cannot be read lends to nobody (fail closed).
_UNREADABLE = LendingPolicy(allow_institutions=("-",), no_env=True, no_pip=True)


def policy_to_json(policy: LendingPolicy) -> str:
    return json.dumps(asdict(policy), sort_keys=True)


def policy_from_json(text: str) -> LendingPolicy:
    d = json.loads(text)
    for name in ("lend_windows", "closed_windows"):
        d[name] = tuple(Window(tuple(w["days"]), w["start"], w["end"]) for w in d.get(name, ()))
    for name in (
        "allow_countries",
        "deny_countries",
        "allow_institutions",
        "deny_institutions",
        "env_allow",
        "pip_allow",
    ):
        d[name] = tuple(d.get(name, ()))
    return LendingPolicy(**d)


def _read(row: LendingRow) -> LendingPolicy:
    try:
        return policy_from_json(row.policy_json)
    except (ValueError, TypeError, KeyError):
        log.error("site %s: its lending policy cannot be read; it lends to nobody until it is set again", row.site)
        return _UNREADABLE


def load_lending(s: Session) -> tuple[tuple[str, LendingPolicy], ...]:
    """Every site's policy, by site name, for the scheduling snapshot."""
    return tuple((r.site, _read(r)) for r in s.exec(select(LendingRow).order_by(LendingRow.site)))


class LendingRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, site: str) -> tuple[str, LendingPolicy | None]:
        """(the site's institution, its policy or None); NotFound for an unknown site."""
        with self.db.read() as s:
            owner = s.get(SiteRow, site)
            if owner is None:
                raise NotFound(f"no site {site!r}")
            row = s.get(LendingRow, site)
            return owner.institution, (_read(row) if row is not None else None)

    def set(self, site: str, policy: LendingPolicy | None, now: float, by: str) -> str:
        """Replace the site's policy (None removes it); returns the site's institution."""
        with self.db.tx() as s:
            owner = s.get(SiteRow, site)
            if owner is None:
                raise NotFound(f"no site {site!r}")
            row = s.get(LendingRow, site)
            if policy is None:
                if row is not None:
                    s.delete(row)
                return owner.institution
            row = row or LendingRow(site=site, policy_json="{}")
            row.policy_json, row.updated_at, row.updated_by = policy_to_json(policy), now, by
            s.add(row)
            return owner.institution

    def all(self) -> tuple[tuple[str, LendingPolicy], ...]:
        with self.db.read() as s:
            return load_lending(s)
