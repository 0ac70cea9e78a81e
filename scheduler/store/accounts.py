"""Institutions, users and tokens (kept only as hashes)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from scheduler.domain import AlreadyExists, FailedPrecondition, NotFound, Principal, Role
from scheduler.store.base import Database
from scheduler.store.shares import ensure_default_project
from scheduler.store.models import InstitutionRow, MetaRow, SiteRow, TokenRow, UserRow


@dataclass(frozen=True)
class Institution:
    slug: str
    name: str
    country: str
    weight: float = 1.0


@dataclass(frozen=True)
class User:
    name: str
    institution: str
    role: Role
    created_at: float


@dataclass(frozen=True)
class JoinGrant:
    site: str
    institution: str
    country: str


class AccountsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- institutions -------------------------------------------------------
    def add_institution(self, inst: Institution, now: float) -> Institution:
        """Idempotent: adding the very same institution again (a retried call) succeeds;
        one with the same slug and other settings is refused."""
        try:
            with self.db.tx() as s:
                existing = s.get(InstitutionRow, inst.slug)
                if existing is not None:
                    if Institution(existing.slug, existing.name, existing.country, existing.weight) == inst:
                        return inst
                    raise AlreadyExists(f"institution {inst.slug!r} already exists "
                                        f"({existing.name}, {existing.country}, weight {existing.weight:g})")
                s.add(InstitutionRow(slug=inst.slug, name=inst.name, country=inst.country,
                                     weight=inst.weight, created_at=now))
                s.flush()
                ensure_default_project(s, inst.slug, now)
        except IntegrityError as exc:  # a concurrent add won the race
            raise AlreadyExists(f"institution {inst.slug!r} already exists") from exc
        return inst

    def list_institutions(self) -> list[Institution]:
        with self.db.read() as s:
            rows = s.exec(select(InstitutionRow).order_by(InstitutionRow.slug)).all()
            return [Institution(r.slug, r.name, r.country, r.weight) for r in rows]

    def get_institution(self, slug: str) -> Institution:
        with self.db.read() as s:
            row = s.get(InstitutionRow, slug)
            if row is None:
                raise NotFound(f"no institution {slug!r}")
            return Institution(row.slug, row.name, row.country, row.weight)

    # -- users --------------------------------------------------------------
    def add_user(self, user: User, token_hash: str) -> User:
        try:
            with self.db.tx() as s:
                s.add(UserRow(name=user.name, institution=user.institution,
                              role=user.role.value, created_at=user.created_at))
                s.flush()
                s.add(TokenRow(hash=token_hash, kind="user", subject=user.name, role=user.role.value,
                               institution=user.institution, created_at=user.created_at))
        except IntegrityError as exc:
            raise AlreadyExists(f"user {user.name!r} already exists") from exc
        return user

    def list_users(self) -> list[User]:
        with self.db.read() as s:
            rows = s.exec(select(UserRow).order_by(UserRow.name)).all()
            return [User(r.name, r.institution, Role(r.role), r.created_at) for r in rows]

    def bootstrap_admin(self, token_hash: str, now: float) -> bool:
        """Create the first admin once per store; False if it already exists."""
        with self.db.tx() as s:
            if s.get(MetaRow, "bootstrap_admin") is not None:
                return False
            s.add(MetaRow(key="bootstrap_admin", value="admin"))
            if s.get(UserRow, "admin") is None:
                s.add(UserRow(name="admin", institution="", role=Role.ADMIN.value, created_at=now))
            s.add(TokenRow(hash=token_hash, kind="user", subject="admin", role=Role.ADMIN.value,
                           created_at=now))
            return True

    # -- tokens -------------------------------------------------------------
    def revoke(self, kind: str, subject: str, now: float) -> int:
        """Revoke every live credential of a user ("user") or a site ("site"); how many."""
        with self.db.tx() as s:
            known = s.get(UserRow, subject) if kind == "user" else s.get(SiteRow, subject)
            if known is None:
                raise NotFound(f"no {kind} {subject!r}")
            rows = s.exec(select(TokenRow).where(TokenRow.kind == kind, TokenRow.subject == subject,
                                                 TokenRow.revoked == False)).all()  # noqa: E712
            for row in rows:
                row.revoked, row.used_at = True, now
                s.add(row)
            return len(rows)

    def rotate(self, old_hash: str, new_hash: str, now: float) -> float:
        """Swap a live user or site token for a new one with the same lifetime, in one
        transaction; returns the new expiry (0: never)."""
        with self.db.tx() as s:
            old = s.get(TokenRow, old_hash)
            if old is None or old.revoked or old.kind == "join" or (old.expires_at and old.expires_at <= now):
                raise FailedPrecondition("this token cannot be rotated: it is unknown, revoked or expired")
            old.revoked = True
            s.add(old)
            lifetime = old.expires_at - old.created_at if old.expires_at else 0.0
            expires_at = now + lifetime if lifetime else 0.0
            s.add(TokenRow(hash=new_hash, kind=old.kind, subject=old.subject, role=old.role,
                           institution=old.institution, country=old.country, expires_at=expires_at,
                           created_at=now))
            return expires_at

    def principal_for(self, token_hash: str, now: float) -> Principal | None:
        """The caller a bearer token stands for, or None if unknown, expired or revoked."""
        with self.db.read() as s:
            row = s.get(TokenRow, token_hash)
            if row is None or row.revoked or row.kind == "join":
                return None
            if row.expires_at and row.expires_at <= now:
                return None
            role = Role(row.role)
            site = row.subject if role is Role.SITE else ""
            return Principal(name=row.subject, role=role, institution=row.institution, site=site)

    def add_join_token(self, token_hash: str, institution: str, site: str, country: str,
                       now: float, expires_at: float) -> None:
        with self.db.tx() as s:
            if s.get(InstitutionRow, institution) is None:
                raise NotFound(f"no institution {institution!r}")
            existing = s.get(SiteRow, site)
            if existing is not None and existing.institution != institution:
                raise AlreadyExists(f"site {site!r} already belongs to {existing.institution!r}")
            s.add(TokenRow(hash=token_hash, kind="join", subject=site, role=Role.SITE.value,
                           institution=institution, country=country, expires_at=expires_at,
                           created_at=now))

    def redeem_join_token(self, join_hash: str, site_token_hash: str, now: float) -> JoinGrant:
        """Use a join token exactly once: register the site and issue its credential."""
        with self.db.tx() as s:
            row = s.get(TokenRow, join_hash)
            if row is None or row.kind != "join" or row.revoked:
                raise FailedPrecondition("join token is not valid: ask the admin for a new one")
            if row.used_at:
                raise FailedPrecondition("join token was already used: ask the admin for a new one")
            if row.expires_at and row.expires_at <= now:
                raise FailedPrecondition("join token has expired: ask the admin for a new one")
            row.used_at = now
            s.add(row)
            site = s.get(SiteRow, row.subject)
            if site is None:
                s.add(SiteRow(name=row.subject, institution=row.institution, country=row.country,
                              joined_at=now))
            for old in s.exec(select(TokenRow).where(TokenRow.kind == "site",
                                                     TokenRow.subject == row.subject)).all():
                old.revoked = True  # re-joining replaces the old credential
                s.add(old)
            s.add(TokenRow(hash=site_token_hash, kind="site", subject=row.subject,
                           role=Role.SITE.value, institution=row.institution, created_at=now))
            return JoinGrant(site=row.subject, institution=row.institution, country=row.country)
