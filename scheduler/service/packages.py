"""Working-dir packages in and out of the broker, in chunks.

One gRPC message is capped (tens of MiB), so a package travels as a stream of
chunks: any size under the broker's own limit goes through. The limit is enforced
while receiving (reading stops at the first byte over it), the digest is checked
over what arrived, and only a complete, verified, safe archive is stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from minga.common.archive import check_archive
from minga.common.domain import InvalidArgument
from minga.scheduler.core import Core
from minga.scheduler.validation import check_digest

CHUNK_BYTES = 1024 * 1024
MAX_PACKAGE_LIMIT = 512 * 1024 * 1024  # a store blob (SQLite, PostgreSQL bytea) stays well under 1 GB
LIMIT_FLAG = "--max-package-bytes"
LIMIT_ENV = "MINGA_BROKER_MAX_PACKAGE_BYTES"
LIMIT_SETTING = f"set by its operator with `minga broker serve {LIMIT_FLAG} SIZE` or {LIMIT_ENV}"

Chunk = tuple[str, int, bytes]  # (digest, declared size, data): digest and size on the first chunk


def over_limit(size: int, limit: int) -> InvalidArgument:
    """The refusal of a package of `size` bytes, naming the limit and how it is changed."""
    return InvalidArgument(
        f"package is {size} bytes or more; this broker accepts at most {limit} bytes ({LIMIT_SETTING})"
    )


def check_limit_setting(limit: int) -> int:
    """A broker's configured package limit, or InvalidArgument saying what is allowed."""
    if not 0 < limit <= MAX_PACKAGE_LIMIT:
        raise InvalidArgument(f"{LIMIT_FLAG} {limit} must be between 1 and {MAX_PACKAGE_LIMIT} bytes")
    return limit


def receive_package(core: Core, chunks: Iterable[Chunk]) -> str:
    """Store the package streamed as `chunks`; its digest. Nothing is stored unless it all
    arrived, within the limit, matching its digest and size, as a safe zip."""
    limit = core.max_package_bytes
    stream = iter(chunks)
    first = next(stream, None)
    if first is None:
        raise InvalidArgument("empty package upload: the first chunk must carry the digest and size")
    digest, size, first_data = first
    check_digest("digest", digest)
    if size < 0:
        raise InvalidArgument(f"package size {size} is negative")
    if size > limit:
        raise over_limit(size, limit)  # refused before reading any more
    hasher, parts, received = hashlib.sha256(), [], 0
    for _digest, _size, data in _chain(first_data, stream, digest):
        received += len(data)
        if received > limit:
            raise over_limit(received, limit)
        hasher.update(data)
        parts.append(data)
    if received != size:
        raise InvalidArgument(f"package upload ended after {received} bytes; the first chunk announced {size}")
    actual = "sha256:" + hasher.hexdigest()
    if actual != digest:
        raise InvalidArgument(f"digest does not match the data (data is {actual})")
    package = b"".join(parts)
    check_archive(package)  # refused here, before any site fetches it
    core.store.blobs.put_package(digest, package, core.clock.now())
    return digest


def _chain(first_data: bytes, rest: Iterator[Chunk], digest: str) -> Iterator[Chunk]:
    """All chunks, the first included; a later chunk naming another digest is refused."""
    yield digest, 0, first_data
    for later_digest, size, data in rest:
        if later_digest and later_digest != digest:
            raise InvalidArgument("a package upload's chunks name two different digests")
        yield later_digest, size, data


def package_chunks(data: bytes, digest: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """`data` as chunks to send: digest and size on the first (one chunk for an empty package)."""
    yield digest, len(data), data[:chunk_bytes]
    for start in range(chunk_bytes, len(data), chunk_bytes):
        yield "", 0, data[start : start + chunk_bytes]
