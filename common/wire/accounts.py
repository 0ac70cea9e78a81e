"""Accounts (common/accounts.py) and the caller (`Principal`, WhoAmI) to and from their
messages: institutions, users, credentials, and the new secrets a reply hands out once."""

from __future__ import annotations

from minga.common.accounts import Institution, JoinToken, NewToken, NewUser, TokenInfo, User
from minga.common.domain import Principal
from minga.common.wire.enums import known_role_from_pb, role_to_pb
from minga.v1 import admin_pb2


def institution_to_pb(i: Institution) -> admin_pb2.Institution:
    return admin_pb2.Institution(slug=i.slug, name=i.name, country=i.country, weight=i.weight)


def institution_from_pb(pb: admin_pb2.Institution) -> Institution:
    return Institution(slug=pb.slug, name=pb.name, country=pb.country, weight=pb.weight)


def user_to_pb(u: User) -> admin_pb2.User:
    return admin_pb2.User(name=u.name, institution=u.institution, role=role_to_pb(u.role), created_at=u.created_at)


def user_from_pb(pb: admin_pb2.User) -> User:
    return User(name=pb.name, institution=pb.institution, role=known_role_from_pb(pb.role), created_at=pb.created_at)


def token_info_to_pb(t: TokenInfo) -> admin_pb2.TokenInfo:
    return admin_pb2.TokenInfo(
        id=t.id,
        owner=t.owner,
        kind=t.kind,
        role=role_to_pb(t.role),
        institution=t.institution,
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked=t.revoked,
        used_at=t.used_at,
        last_used_at=t.last_used_at,
    )


def token_info_from_pb(pb: admin_pb2.TokenInfo) -> TokenInfo:
    return TokenInfo(
        id=pb.id,
        owner=pb.owner,
        kind=pb.kind,
        role=known_role_from_pb(pb.role),
        institution=pb.institution,
        created_at=pb.created_at,
        expires_at=pb.expires_at,
        revoked=pb.revoked,
        used_at=pb.used_at,
        last_used_at=pb.last_used_at,
    )


def new_user_to_pb(n: NewUser) -> admin_pb2.AddUserResponse:
    return admin_pb2.AddUserResponse(user=user_to_pb(n.user), token=n.token, expires_at=n.expires_at)


def new_user_from_pb(pb: admin_pb2.AddUserResponse) -> NewUser:
    return NewUser(user=user_from_pb(pb.user), token=pb.token, expires_at=pb.expires_at)


def join_token_to_pb(j: JoinToken) -> admin_pb2.CreateSiteTokenResponse:
    return admin_pb2.CreateSiteTokenResponse(site=j.site, token=j.token, expires_at=j.expires_at)


def join_token_from_pb(pb: admin_pb2.CreateSiteTokenResponse) -> JoinToken:
    return JoinToken(site=pb.site, token=pb.token, expires_at=pb.expires_at)


def new_token_to_pb(t: NewToken) -> admin_pb2.RotateTokenResponse:
    return admin_pb2.RotateTokenResponse(token=t.token, expires_at=t.expires_at)


def new_token_from_pb(pb: admin_pb2.RotateTokenResponse) -> NewToken:
    return NewToken(token=pb.token, expires_at=pb.expires_at)


def whoami_to_pb(p: Principal) -> admin_pb2.WhoAmIResponse:
    """The caller's name, role and institution (a site's name is its own)."""
    return admin_pb2.WhoAmIResponse(name=p.name, role=role_to_pb(p.role), institution=p.institution)


def whoami_from_pb(pb: admin_pb2.WhoAmIResponse) -> Principal:
    return Principal(name=pb.name, role=known_role_from_pb(pb.role), institution=pb.institution)
