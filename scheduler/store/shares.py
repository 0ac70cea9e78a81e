"""The account tree's settings: projects, weights, guarantees, limits and the policy."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from minga.common.domain import AlreadyExists, InvalidArgument, NotFound
from minga.common.lending import LendingPolicy
from minga.common.limits import AccountLimit
from minga.common.shares import InstitutionShare, ProjectShare, ShareSettings
from minga.scheduler.accounting import Ledger, decayed_ledgers, shares_at
from minga.scheduler.store.base import Database
from minga.scheduler.store.generations import Cached
from minga.scheduler.store.lending import load_lending
from minga.scheduler.store.limits import read_limits
from minga.scheduler.store.models import (
    CarbonFigureRow,
    ContributionRow,
    CountryRow,
    GuaranteeRow,
    InstitutionRow,
    MetaRow,
    ProjectRow,
    UsageRow,
    UserRow,
    UserUsageRow,
    UserWeightRow,
)

SETTINGS_KEY = "share_settings"
DEFAULT_PROJECT = "default"
PROJECTS_TTL = 60.0  # projects are never deleted: a resolved one stays right


def project_id(institution: str, name: str) -> str:
    return f"{institution}/{name}"


def read_settings(s: Session) -> ShareSettings:
    """The fair-share settings, read once per transaction (a batch of reports asks for
    them once per run it ends)."""
    cached: ShareSettings | None = s.info.get(_SETTINGS_INFO)
    if cached is not None:
        return cached
    row = s.get(MetaRow, SETTINGS_KEY)
    if row is None:
        settings = ShareSettings()
    else:
        d = json.loads(row.value)
        d["model_weights"] = tuple(tuple(x) for x in d.get("model_weights", ()))
        d["latency"] = tuple(tuple(x) for x in d.get("latency", ()))
        settings = ShareSettings(**d)
    s.info[_SETTINGS_INFO] = settings
    return settings


_SETTINGS_INFO = "minga.settings"


def ensure_default_project(s: Session, institution: str, now: float) -> None:
    pid = project_id(institution, DEFAULT_PROJECT)
    if s.get(ProjectRow, pid) is None:
        s.add(ProjectRow(id=pid, institution=institution, name=DEFAULT_PROJECT, created_at=now))


class SharesRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._projects: Cached[str] = Cached(db.generations, (ProjectRow.__tablename__,), PROJECTS_TTL)

    def settings(self) -> ShareSettings:
        with self.db.read() as s:
            return read_settings(s)

    def update_settings(self, **changes: Any) -> ShareSettings:
        """Replace the named settings, each already checked by the caller."""
        with self.db.tx() as s:
            current = replace(read_settings(s), **changes)
            row = s.get(MetaRow, SETTINGS_KEY) or MetaRow(key=SETTINGS_KEY)
            row.value = json.dumps(asdict(current))
            s.add(row)
            s.info[_SETTINGS_INFO] = current
            return current

    def add_project(self, institution: str, name: str, weight: float, now: float) -> ProjectShare:
        """Idempotent like adding an institution: the same project again succeeds."""
        try:
            with self.db.tx() as s:
                if s.get(InstitutionRow, institution) is None:
                    raise NotFound(f"no institution {institution!r}")
                pid = project_id(institution, name)
                existing = s.get(ProjectRow, pid)
                if existing is not None:
                    if existing.weight == weight:
                        return ProjectShare(pid, institution, weight)
                    raise AlreadyExists(f"project {pid} already exists with weight {existing.weight:g}")
                s.add(ProjectRow(id=pid, institution=institution, name=name, weight=weight, created_at=now))
        except IntegrityError as exc:
            raise AlreadyExists(f"project {institution}/{name} already exists") from exc
        return ProjectShare(pid, institution, weight)

    def list_projects(self) -> list[ProjectShare]:
        with self.db.read() as s:
            rows = s.exec(select(ProjectRow).order_by(ProjectRow.id)).all()
            return [ProjectShare(r.id, r.institution, r.weight) for r in rows]

    def resolve_project(self, institution: str, name: str, now: float) -> str:
        """The project id a job of `institution` is charged to; the default one is made on
        demand. Resolved ids are cached (projects are never deleted); refusals are not."""
        return self._projects.get((institution, name), now, lambda: self._resolve(institution, name, now))

    def _resolve(self, institution: str, name: str, now: float) -> str:
        with self.db.tx() as s:
            if not name or name == DEFAULT_PROJECT:
                ensure_default_project(s, institution, now)
                return project_id(institution, DEFAULT_PROJECT)
            pid = name if "/" in name else project_id(institution, name)
            row = s.get(ProjectRow, pid)
            if row is None or row.institution != institution:
                raise NotFound(f"no project {pid!r} in institution {institution!r}")
            return pid

    def set_weight(self, kind: str, key: str, weight: float) -> None:
        with self.db.tx() as s:
            if kind == "user":
                self._set_user_weight(s, key, weight)
                return
            if kind == "country":
                row = s.get(CountryRow, key) or CountryRow(code=key, weight=weight)
                row.weight = weight
                s.add(row)
                return
            tables: dict[str, type[InstitutionRow | ProjectRow]] = {
                "institution": InstitutionRow,
                "project": ProjectRow,
            }
            table = tables.get(kind)
            if table is None:
                raise InvalidArgument("kind must be country, institution, project or user")
            found = s.get(table, key)
            if found is None:
                raise NotFound(f"no {kind} {key!r}")
            found.weight = weight
            s.add(found)

    @staticmethod
    def _set_user_weight(s: Session, key: str, weight: float) -> None:
        """A user leaf '<institution>/<project>/<user>': the project must exist, and the user
        belong to the project's institution."""
        pid, _, name = key.rpartition("/")
        project = s.get(ProjectRow, pid)
        if project is None:
            raise NotFound(f"no project {pid!r}")
        user = s.get(UserRow, name)
        if user is None or user.institution != project.institution:
            raise NotFound(f"no user {name!r} in institution {project.institution!r}")
        row = s.get(UserWeightRow, key) or UserWeightRow(user=key, weight=weight)
        row.weight = weight
        s.add(row)

    def set_guarantee(self, institution: str, model: str, gpus: int) -> None:
        with self.db.tx() as s:
            if s.get(InstitutionRow, institution) is None:
                raise NotFound(f"no institution {institution!r}")
            row = s.get(GuaranteeRow, (institution, model))
            if gpus == 0:
                if row is not None:
                    s.delete(row)
                return
            row = row or GuaranteeRow(institution=institution, gpu_model=model, gpus=gpus)
            row.gpus = gpus
            s.add(row)

    def set_limits(self, institution: str, borrowing: int | None, lending: int | None) -> None:
        with self.db.tx() as s:
            row = s.get(InstitutionRow, institution)
            if row is None:
                raise NotFound(f"no institution {institution!r}")
            row.borrowing_limit, row.lending_limit = borrowing, lending
            s.add(row)


@dataclass(frozen=True)
class AccountTree:
    """The account tree as the admin set it, and the sites' lending policies; each
    institution's `contribution` is left at 0 (it comes from the ledger, `load_shares`)."""

    institutions: tuple[InstitutionShare, ...] = ()
    projects: tuple[ProjectShare, ...] = ()
    countries: tuple[tuple[str, float], ...] = ()
    settings: ShareSettings = ShareSettings()
    lending: tuple[tuple[str, LendingPolicy], ...] = ()
    users: tuple[tuple[str, float], ...] = ()  # user leaf -> the weight an admin set
    limits: tuple[AccountLimit, ...] = ()  # per user and per project (`minga.common.limits`)
    # grid intensities admins set, (kind, key, gCO2e/kWh), kind "site" or "country" (low-carbon placement)
    intensity_figures: tuple[tuple[str, str, float], ...] = ()


def read_accounts(s: Session) -> AccountTree:
    guarantees: dict[str, list[tuple[str, int]]] = {}
    for g in s.exec(select(GuaranteeRow).order_by(GuaranteeRow.institution, GuaranteeRow.gpu_model)).all():
        guarantees.setdefault(g.institution, []).append((g.gpu_model, g.gpus))
    institutions = tuple(
        InstitutionShare(
            slug=r.slug,
            country=r.country,
            weight=r.weight,
            contribution=0.0,
            guarantee=tuple(guarantees.get(r.slug, ())),
            borrowing_limit=r.borrowing_limit,
            lending_limit=r.lending_limit,
        )
        for r in s.exec(select(InstitutionRow).order_by(InstitutionRow.slug)).all()
    )
    projects = tuple(
        ProjectShare(r.id, r.institution, r.weight) for r in s.exec(select(ProjectRow).order_by(ProjectRow.id)).all()
    )
    countries = tuple((c.code, c.weight) for c in s.exec(select(CountryRow).order_by(CountryRow.code)).all())
    users = tuple((u.user, u.weight) for u in s.exec(select(UserWeightRow).order_by(UserWeightRow.user)).all())
    figures = tuple(
        (r.kind, r.key, r.value)
        for r in s.exec(select(CarbonFigureRow).where(col(CarbonFigureRow.kind).in_(("site", "country")))).all()
    )
    return AccountTree(
        institutions, projects, countries, read_settings(s), load_lending(s), users, read_limits(s), figures
    )


def load_shares(
    s: Session, now: float
) -> tuple[AccountTree, tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """The tree with each institution's contribution, and each project's and user leaf's
    usage, all decayed to `now` (in GPU-hours and GPU-seconds), for a snapshot read from the store."""
    tree = read_accounts(s)
    institutions, usage = shares_at(
        tree.institutions,
        {c.institution: Ledger(c.value, c.as_of) for c in s.exec(select(ContributionRow))},
        {u.project: Ledger(u.value, u.as_of) for u in s.exec(select(UsageRow))},
        now,
        tree.settings.half_life_seconds,
    )
    user_usage = decayed_ledgers(
        {u.user: Ledger(u.value, u.as_of) for u in s.exec(select(UserUsageRow))}, now, tree.settings.half_life_seconds
    )
    return replace(tree, institutions=institutions), usage, user_usage
