"""The federation's accounts as the broker keeps and shows them: institutions, users, the
credentials they hold (never a secret nor its hash), and new secrets, which exist only in
the one reply that hands them out."""

from __future__ import annotations

from dataclasses import dataclass

from minga.common.domain import Role


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
class TokenInfo:
    """What may be shown of a credential: never its secret, nor its hash."""

    id: str  # a short handle: the start of the keyed hash's hex
    owner: str  # a user's name, or a site's for site and join tokens
    kind: str  # "user", "site" or "join"
    role: Role
    institution: str
    created_at: float
    expires_at: float  # 0: never
    revoked: bool
    used_at: float  # join tokens: when redeemed
    last_used_at: float  # to within an hour; 0: never


@dataclass(frozen=True)
class NewToken:
    """A new secret (a rotated token), shown only this once."""

    token: str
    expires_at: float  # 0: never


@dataclass(frozen=True)
class NewUser:
    """A user just added, and its first token, shown only this once."""

    user: User
    token: str
    expires_at: float


@dataclass(frozen=True)
class JoinToken:
    """A one-time token that lets `site` join (`minga site join`)."""

    site: str
    token: str
    expires_at: float
