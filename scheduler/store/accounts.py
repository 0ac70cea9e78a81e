"""Institutions, users and tokens (kept only as keyed hashes; see scheduler.auth).

Every method takes hashes, never tokens. A lookup may also be given the token's
legacy (unkeyed SHA-256) hash: a row found only by that is re-keyed on the spot, so
stores from before revision 0004 upgrade token by token as each is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import not_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from minga.common.accounts import Institution, TokenInfo, User
from minga.common.domain import AlreadyExists, FailedPrecondition, NotFound, Principal, Role, Unauthenticated
from minga.scheduler.auth import KEYED_PREFIX, TokenHasher, legacy_hash, same_hash
from minga.scheduler.store.base import Database
from minga.scheduler.store.generations import Cached
from minga.scheduler.store.models import (
    InstitutionRow,
    JobRow,
    MetaRow,
    ProjectRow,
    SiteRow,
    TokenRow,
    UserRow,
)
from minga.scheduler.store.shares import ensure_default_project

KEY_FINGERPRINT = "token_key_fingerprint"
LAST_USED_RESOLUTION = 3600.0  # seconds: how stale a token's "last used" may be
TOKENS_TTL = 2.0  # seconds a token revoked through another broker on the same store may still work here


@dataclass(frozen=True)
class JoinGrant:
    site: str
    institution: str
    country: str


class AccountsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._tokens: TokenHasher | None = None  # set by use_key when a broker starts
        # keyed hash -> (caller, expiry): any change to the tokens table forgets them all
        self._grants: Cached[tuple[Principal, float]] = Cached(db.generations, (TokenRow.__tablename__,), TOKENS_TTL)

    def hash(self, token: str) -> str:
        """The token's keyed hash: what this store keeps of it."""
        assert self._tokens is not None, "no token key: call use_key first"
        return self._tokens.hash(token)

    def principal_for_token(self, token: str, now: float) -> Principal | None:
        """The caller a bearer token stands for (see `authenticate`); a token of a store
        from before keyed hashes is found by its legacy hash and re-keyed now. Answers
        are cached: a revocation, rotation or re-join here is seen by the next call, one
        through another broker within TOKENS_TTL, and expiry is checked on every call."""
        keyed = self.hash(token)
        grant = self._grants.get(keyed, now, lambda: self._grant(keyed, now, legacy_hash(token)))
        if grant is None:
            return None
        principal, expires_at = grant
        if expires_at and expires_at <= now:
            self._grants.forget(keyed)
            return self.authenticate(keyed, now)  # says it expired
        return principal

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
                    raise AlreadyExists(
                        f"institution {inst.slug!r} already exists "
                        f"({existing.name}, {existing.country}, weight {existing.weight:g})"
                    )
                s.add(
                    InstitutionRow(
                        slug=inst.slug, name=inst.name, country=inst.country, weight=inst.weight, created_at=now
                    )
                )
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
    def add_user(self, user: User, token_hash: str, expires_at: float = 0.0) -> User:
        try:
            with self.db.tx() as s:
                s.add(
                    UserRow(
                        name=user.name, institution=user.institution, role=user.role.value, created_at=user.created_at
                    )
                )
                s.flush()
                s.add(
                    TokenRow(
                        hash=token_hash,
                        kind="user",
                        subject=user.name,
                        role=user.role.value,
                        institution=user.institution,
                        created_at=user.created_at,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"user {user.name!r} already exists") from exc
        return user

    def list_users(self, institution: str | None = None) -> list[User]:
        """Every user, or one institution's (None: all)."""
        query = select(UserRow).order_by(UserRow.name)
        if institution is not None:
            query = query.where(UserRow.institution == institution)
        with self.db.read() as s:
            return [User(r.name, r.institution, Role(r.role), r.created_at) for r in s.exec(query).all()]

    def owner_of(self, kind: str, key: str) -> str | None:
        """The institution a user, site, project, job, job array, institution or token owner belongs to; None if
        there is no such thing (what authorization checks a request's target against).
        Admin users belong to no institution (""): the federation's."""
        with self.db.read() as s:
            if kind == "institution":
                return key if s.get(InstitutionRow, key) is not None else None
            if kind == "owner":  # a token's owner: a user, else a site
                found = s.get(UserRow, key) or s.get(SiteRow, key)
                return None if found is None else found.institution
            if kind == "array":  # a job array: the institution of its tasks
                task = s.exec(select(JobRow).where(JobRow.array_id == key).limit(1)).first()
                return None if task is None else task.institution
            tables: dict[str, type[UserRow | SiteRow | ProjectRow | JobRow]] = {
                "user": UserRow,
                "site": SiteRow,
                "project": ProjectRow,
                "job": JobRow,
            }
            # Session.get types a union of tables as their common base: name the union again.
            owned = cast("UserRow | SiteRow | ProjectRow | JobRow | None", s.get(tables[kind], key))
            return None if owned is None else owned.institution

    # -- the token key --------------------------------------------------------
    def use_key(self, tokens: TokenHasher) -> None:
        """Hash tokens with this key from now on. Its fingerprint is recorded on first use,
        and a broker whose key differs is refused: every hash it computed would match
        nothing in this store, and every token would look unknown."""
        with self.db.tx() as s:
            row = s.get(MetaRow, KEY_FINGERPRINT)
            if row is None:
                s.add(MetaRow(key=KEY_FINGERPRINT, value=tokens.fingerprint))
            elif not same_hash(row.value, tokens.fingerprint):
                raise FailedPrecondition(
                    "this store's tokens were hashed with another token key: start this broker with "
                    "the key file of the brokers already using the store (--token-key-file)"
                )
        self._tokens = tokens

    def bootstrap_admin(self, token_hash: str, now: float) -> bool:
        """Create the first admin once per store; False if it already exists."""
        with self.db.tx() as s:
            if s.get(MetaRow, "bootstrap_admin") is not None:
                return False
            s.add(MetaRow(key="bootstrap_admin", value="admin"))
            if s.get(UserRow, "admin") is None:
                s.add(UserRow(name="admin", institution="", role=Role.ADMIN.value, created_at=now))
            s.add(TokenRow(hash=token_hash, kind="user", subject="admin", role=Role.ADMIN.value, created_at=now))
            return True

    # -- tokens -------------------------------------------------------------
    def revoke(self, kind: str, subject: str, now: float) -> int:
        """Revoke every live credential of a user ("user") or a site ("site"); how many."""
        with self.db.tx() as s:
            known = s.get(UserRow, subject) if kind == "user" else s.get(SiteRow, subject)
            if known is None:
                raise NotFound(f"no {kind} {subject!r}")
            rows = s.exec(
                select(TokenRow).where(TokenRow.kind == kind, TokenRow.subject == subject, not_(col(TokenRow.revoked)))
            ).all()
            for row in rows:
                row.revoked, row.used_at = True, now
                s.add(row)
            return len(rows)

    def rotate(self, old_hash: str, new_hash: str, now: float, old_legacy: str = "") -> float:
        """Swap a live user or site token for a new one with the same lifetime, in one
        transaction; returns the new expiry (0: never), counted afresh from now."""
        with self.db.tx() as s:
            old = _find(s, old_hash, old_legacy)
            if old is None or old.revoked or old.kind == "join" or (old.expires_at and old.expires_at <= now):
                raise FailedPrecondition("this token cannot be rotated: it is unknown, revoked or expired")
            old.revoked = True
            s.add(old)
            lifetime = old.expires_at - old.created_at if old.expires_at else 0.0
            expires_at = now + lifetime if lifetime else 0.0
            s.add(
                TokenRow(
                    hash=new_hash,
                    kind=old.kind,
                    subject=old.subject,
                    role=old.role,
                    institution=old.institution,
                    country=old.country,
                    expires_at=expires_at,
                    created_at=now,
                )
            )
            return expires_at

    def add_site_certificate(self, site: str, serial: str, now: float, expires_at: float) -> None:
        """A renewed client certificate of a live site becomes one of its credentials. The
        previous one stays valid until it expires, so an agent that dies between the
        broker's answer and saving the new certificate can still connect and renew."""
        with self.db.tx() as s:
            live = s.exec(
                select(TokenRow).where(TokenRow.kind == "site", TokenRow.subject == site, not_(col(TokenRow.revoked)))
            ).first()
            if live is None:
                raise FailedPrecondition(f"site {site!r} has no live credential to renew: join again")
            s.add(
                TokenRow(
                    hash=serial,
                    kind="site",
                    subject=site,
                    role=Role.SITE.value,
                    institution=live.institution,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def principal_for(self, token_hash: str, now: float, legacy: str = "") -> Principal | None:
        """The caller a bearer token stands for, or None if unknown, expired or revoked."""
        try:
            return self.authenticate(token_hash, now, legacy)
        except Unauthenticated:
            return None

    def authenticate(self, token_hash: str, now: float, legacy: str = "") -> Principal | None:
        """Like `principal_for`, but an expired token raises Unauthenticated saying so:
        its holder needs a new one, not a check of their typing."""
        grant = self._grant(token_hash, now, legacy)
        return grant[0] if grant is not None else None

    def _grant(self, token_hash: str, now: float, legacy: str = "") -> tuple[Principal, float] | None:
        """(caller, expiry) of a live token; None if unknown or revoked; raises if expired."""
        with self.db.read() as s:
            row = _get(s, token_hash)
            legacy_row = None if row is not None or not legacy else _get(s, legacy)
        if legacy_row is not None and not legacy_row.hash.startswith(KEYED_PREFIX):
            with self.db.tx() as s:  # first use since the upgrade: re-key it
                row = _find(s, token_hash, legacy)
        if row is None or row.revoked or row.kind == "join":
            return None
        if row.expires_at and row.expires_at <= now:
            raise Unauthenticated(
                "token expired: ask your admin for a new one (`minga token rotate` renews a token before it expires)"
            )
        if now - max(row.last_used_at, row.created_at) >= LAST_USED_RESOLUTION:
            self._touch(row.hash, now)
        role = Role(row.role)
        site = row.subject if role is Role.SITE else ""
        return Principal(name=row.subject, role=role, institution=row.institution, site=site), row.expires_at

    def _touch(self, token_hash: str, now: float) -> None:
        """Record a use, at most once per LAST_USED_RESOLUTION per token: a write per call
        would cost every call a write transaction. A failed write costs nothing but this."""
        try:
            with self.db.tx() as s:
                row = s.get(TokenRow, token_hash)
                if row is not None:
                    row.last_used_at = now
                    s.add(row)
        except Exception:  # noqa: BLE001 - bookkeeping; the call itself goes on
            pass

    def list_tokens(self, owner: str = "", institution: str | None = None) -> list[TokenInfo]:
        """Tokens, newest first: of one owner ("": all), of one institution (None: all)."""
        query = select(TokenRow)
        if owner:
            query = query.where(TokenRow.subject == owner)
        if institution is not None:
            query = query.where(TokenRow.institution == institution)
        with self.db.read() as s:
            rows = s.exec(query.order_by(col(TokenRow.created_at).desc(), col(TokenRow.subject))).all()
            return [
                TokenInfo(
                    id=r.hash.removeprefix(KEYED_PREFIX)[:12],
                    owner=r.subject,
                    kind=r.kind,
                    role=Role(r.role) if r.role else Role.SITE,
                    institution=r.institution,
                    created_at=r.created_at,
                    expires_at=r.expires_at,
                    revoked=r.revoked,
                    used_at=r.used_at if r.kind == "join" else 0.0,
                    last_used_at=r.last_used_at,
                )
                for r in rows
            ]

    def add_join_token(
        self, token_hash: str, institution: str, site: str, country: str, now: float, expires_at: float
    ) -> None:
        with self.db.tx() as s:
            if s.get(InstitutionRow, institution) is None:
                raise NotFound(f"no institution {institution!r}")
            existing = s.get(SiteRow, site)
            if existing is not None and existing.institution != institution:
                raise AlreadyExists(f"site {site!r} already belongs to {existing.institution!r}")
            s.add(
                TokenRow(
                    hash=token_hash,
                    kind="join",
                    subject=site,
                    role=Role.SITE.value,
                    institution=institution,
                    country=country,
                    expires_at=expires_at,
                    created_at=now,
                )
            )

    def redeem_join_token(
        self, join_hash: str, site_token_hash: str, now: float, expires_at: float = 0.0, join_legacy: str = ""
    ) -> JoinGrant:
        """Use a join token exactly once: register the site and issue its credential
        (a bearer token's hash, or a client certificate's serial: see `add_site_certificate`)."""
        with self.db.tx() as s:
            row = _find(s, join_hash, join_legacy)
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
                s.add(SiteRow(name=row.subject, institution=row.institution, country=row.country, joined_at=now))
            for old in s.exec(select(TokenRow).where(TokenRow.kind == "site", TokenRow.subject == row.subject)).all():
                old.revoked = True  # re-joining replaces the old credential
                s.add(old)
            s.add(
                TokenRow(
                    hash=site_token_hash,
                    kind="site",
                    subject=row.subject,
                    role=Role.SITE.value,
                    institution=row.institution,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            return JoinGrant(site=row.subject, institution=row.institution, country=row.country)


def _get(s: Session, token_hash: str) -> TokenRow | None:
    """The token row with this hash; compared again in constant time, since a database
    may match primary keys in ways of its own (collations, trailing spaces)."""
    row = s.get(TokenRow, token_hash)
    return row if row is not None and same_hash(row.hash, token_hash) else None


def _find(s: Session, token_hash: str, legacy: str) -> TokenRow | None:
    """The row for a token by its keyed hash, else by its legacy hash, which is then
    replaced by the keyed one in this transaction (the legacy hash stops working)."""
    row = _get(s, token_hash)
    if row is not None or not legacy:
        return row
    old = _get(s, legacy)
    if old is None or old.hash.startswith(KEYED_PREFIX):
        return None
    fields = old.model_dump()
    s.delete(old)
    s.flush()
    fresh = TokenRow(**{**fields, "hash": token_hash})
    s.add(fresh)
    s.flush()
    return fresh
