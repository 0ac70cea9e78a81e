"""Working-dir packages: fetched from the broker once per digest, checked against
the digest, unpacked safely into a local cache, then handed to Ray as a local
`working_dir`.

A package is a zip made by a researcher's CLI, so it is untrusted input: entries
with absolute paths, `..` components or that would land outside the target dir
are rejected, not silently rewritten.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import grpc

from minga.common.archive import MAX_ENTRIES, entry_kind, unsafe_name
from minga.v1 import site_pb2, site_pb2_grpc

log = logging.getLogger(__name__)

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_FETCH_BYTES = 1024**3  # more than any broker accepts (its limit is at most 512 MiB)


class PackageError(Exception):
    """A package is missing, does not match its digest, or is not a safe zip."""


def digest_of(data: bytes) -> str:
    """The content address of a package: "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch_from_broker(
    stub: site_pb2_grpc.SiteServiceStub, digest: str, metadata: Sequence[tuple[str, str]], timeout: float
) -> bytes:
    """Package `digest` from the broker, streamed in chunks (a package may exceed one gRPC
    message); a broker without the stream is asked in one message. The caller checks the digest."""
    request = site_pb2.FetchPackageRequest(digest=digest)
    parts: list[bytes] = []
    expected, received = -1, 0
    try:
        for chunk in stub.FetchPackageStream(request, metadata=metadata, timeout=timeout):
            if expected < 0:
                expected = chunk.size
            received += len(chunk.data)
            if received > max(expected, 0) or received > MAX_FETCH_BYTES:
                raise PackageError(f"package {digest} sent more than the {expected} bytes announced")
            parts.append(chunk.data)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        return stub.FetchPackage(request, metadata=metadata, timeout=timeout).data
    if received != expected:
        raise PackageError(f"package {digest} ended after {received} of {expected} bytes")
    return b"".join(parts)


def _digest_hex(digest: str) -> str:
    match = DIGEST.match(digest)
    if match is None:
        raise PackageError(f"malformed package digest {digest!r}")
    return match.group(1)


def _safe_member_path(name: str, dest: Path) -> Path:
    """Where entry `name` goes under `dest`; PackageError if it would escape."""
    why = unsafe_name(name)
    if why is not None:
        raise PackageError(f"unsafe path in package: {name!r} ({why})")
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise PackageError(f"unsafe path in package: {name!r}")
    target = (dest / Path(*parts)).resolve() if parts else dest.resolve()
    if target != dest.resolve() and dest.resolve() not in target.parents:
        raise PackageError(f"unsafe path in package: {name!r}")
    return target


def safe_extract(data: bytes, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Unpack zip `data` into the existing dir `dest`, validating every entry first."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise PackageError(f"package is not a zip archive: {err}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ENTRIES:
            raise PackageError(f"package holds {len(members)} entries; the limit is {MAX_ENTRIES}")
        targets = [_safe_member_path(m.filename, dest) for m in members]
        for member in members:
            kind = entry_kind(member)
            if kind not in ("dir", "file"):  # a link could point anywhere: refused, never made
                raise PackageError(f"package entry {member.filename!r} is a {kind}; only plain files are unpacked")
        if sum(m.file_size for m in members) > max_bytes:
            raise PackageError(f"package unpacks to more than {max_bytes} bytes")
        try:
            _write_members(archive, members, targets)
        except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as err:
            # e.g. a file and a dir of one name, or a corrupt entry: still the package's fault
            raise PackageError(f"package cannot be unpacked: {err}") from None


def _write_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], targets: list[Path]) -> None:
    """Write checked entries as plain files (O_EXCL: an entry never replaces or follows
    an earlier one, so two entries of one name cannot play tricks)."""
    for member, target in zip(members, targets, strict=True):
        if member.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(target, "xb") as out:
            shutil.copyfileobj(src, out)
        mode = (member.external_attr >> 16) & 0o777
        if mode:
            os.chmod(target, mode | 0o600)


class PackageCache:
    """Unpacked packages under `root/<sha256 hex>/`, fetched on first use.

    `fetch(digest) -> bytes` gets the zip (from the broker); the cache checks it
    against the digest before unpacking, so a package dir is always complete and
    correct: it is unpacked into a temp dir and renamed into place.
    """

    def __init__(self, root: str | Path, fetch: Callable[[str], bytes]) -> None:
        self.root = Path(root).resolve()  # Ray gets these paths as working_dir
        self._fetch = fetch
        self._lock = threading.Lock()

    def path_for(self, digest: str) -> Path:
        return self.root / _digest_hex(digest)

    def get(self, digest: str) -> Path:
        """The local dir of package `digest`, fetching and unpacking it if needed."""
        final = self.path_for(digest)
        with self._lock:
            if final.is_dir():
                return final
            data = self._fetch(digest)
            if digest_of(data) != digest:
                raise PackageError(f"package {digest} does not match its content ({digest_of(data)})")
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
            try:
                safe_extract(data, staging)
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            log.info("cached package %s (%d bytes)", digest, len(data))
            return final
