"""Bearer tokens and the key their at-rest hashes are made with.

Tokens are 256-bit random secrets, never stored raw. The store keeps an HMAC-SHA256
of each, keyed with a broker secret (the token key): someone who reads the database
(a backup, a replica, a leaked dump) can neither check guesses against the hashes
nor mint a hash for a token of their own without also holding the key file.

Stores written before keyed hashes hold plain SHA-256 hashes. Those cannot be re-keyed
without the tokens themselves, so a legacy hash is accepted on its token's next use
and replaced by the keyed one there and then (see `AccountsRepo`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from minga.common.domain import InvalidArgument

TOKEN_PREFIXES = {"user": "mgu_", "site": "mgs_", "join": "mgj_"}
KEYED_PREFIX = "hmac-sha256:"  # marks a keyed hash; a legacy one is bare hex
KEY_BYTES = 32
DEFAULT_USER_TTL = 90 * 86400  # user tokens; site and bootstrap-admin tokens never expire
MAX_USER_TTL = 5 * 365 * 86400


def new_token(kind: str) -> str:
    return TOKEN_PREFIXES[kind] + secrets.token_urlsafe(32)


def legacy_hash(token: str) -> str:
    """The unkeyed SHA-256 that stores before revision 0004 hold."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenHasher:
    """Hashes tokens with the broker's key; every broker on one store must share it."""

    key: bytes

    def hash(self, token: str) -> str:
        return KEYED_PREFIX + hmac.new(self.key, token.encode(), hashlib.sha256).hexdigest()

    @property
    def fingerprint(self) -> str:
        """Names the key without revealing it: what the store records, so that a broker
        started with another key is refused instead of rejecting every token."""
        return hmac.new(self.key, b"minga token key fingerprint", hashlib.sha256).hexdigest()[:32]


def same_hash(stored: str, computed: str) -> bool:
    """Constant-time equality of a hash read back from the store and a computed one."""
    return hmac.compare_digest(stored.encode(), computed.encode())


def load_or_create_key(path: Path) -> TokenHasher:
    """The token key in `path`, created (owner-only) on the first start.

    Two brokers starting at once on one data dir must end with one key: the key is
    written to a temporary file and linked into place, which fails if another broker
    won, and then that broker's key is read.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the token key file {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise InvalidArgument(f"the token key file {path} does not hold a key (at least 32 hex digits)")
    return TokenHasher(key)


def bearer_from_metadata(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
