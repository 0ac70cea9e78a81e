"""Bearer tokens: generated with enough entropy to make a plain SHA-256 hash a safe
at-rest form (no salt needed for 256-bit random secrets), and never stored raw."""
from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIXES = {"user": "mgu_", "site": "mgs_", "join": "mgj_"}


def new_token(kind: str) -> str:
    return TOKEN_PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_from_metadata(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
