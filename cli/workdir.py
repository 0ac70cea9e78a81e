"""Pack a working directory into a deterministic zip, named by its sha256.

Determinism is what makes the content addressing work: sorted paths, fixed
timestamps and permissions, fixed compression, so an unchanged directory gives
the same bytes, the same digest, and is never uploaded twice. Whatever the
directory's `.gitignore` files exclude (git's rules, nested files included)
stays home, and so does `.git/`.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pathspec

from minga.cli.parsing import format_bytes, parse_size

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # a broker's default limit, assumed when it does not state its own
MAX_BYTES_ENV = "MINGA_MAX_PACKAGE_BYTES"  # a lower cap on this machine only; never raises the broker's
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_ALWAYS_SKIP = frozenset({".git"})


class PackageError(ValueError):
    """The directory cannot be packed (too big, unreadable); message says what to do."""


@dataclass(frozen=True)
class Limit:
    """The size a package must stay within here, and the advice for going past it."""

    max_bytes: int
    advice: str  # appended to the too-big error: which setting to change, and who changes it


@dataclass(frozen=True)
class Package:
    digest: str  # "sha256:<hex>" of `data`
    data: bytes  # the zip archive
    files: int


def max_package_bytes() -> int | None:
    """This machine's own cap, $MINGA_MAX_PACKAGE_BYTES (bytes or a size like 50MiB); None if unset."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return None
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise PackageError(f"{MAX_BYTES_ENV}={raw!r} is not a size: use bytes or e.g. 50MiB") from exc


def effective_limit(broker_max: int | None, broker_setting: str = "") -> Limit:
    """The limit to pack within: the broker's (None: a broker too old to say, so the
    default), lowered by $MINGA_MAX_PACKAGE_BYTES if set. The advice names only a setting
    that lifts the limit that binds: raising the local cap past the broker's does nothing."""
    local = max_package_bytes()
    broker = broker_max if broker_max and broker_max > 0 else DEFAULT_MAX_BYTES
    if local is not None and local < broker:
        return Limit(
            local,
            f", or raise {MAX_BYTES_ENV} (a cap on this machine; the broker accepts up to {format_bytes(broker)})",
        )
    who = broker_setting or "its operator sets it when starting the broker"
    return Limit(broker, f"; the broker accepts at most {format_bytes(broker)} ({who})")


def _load_ignore(directory: Path) -> pathspec.GitIgnoreSpec | None:
    path = directory / ".gitignore"
    if not path.is_file():
        return None
    return pathspec.GitIgnoreSpec.from_lines(path.read_text(errors="replace").splitlines())


def _ignored(rel: str, is_dir: bool, specs: list[tuple[str, pathspec.GitIgnoreSpec]]) -> bool:
    """Git's rule: the deepest .gitignore with a matching pattern decides."""
    for base, spec in reversed(specs):
        sub = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            return bool(result.include)
    return False


def list_files(root: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of every file to ship, sorted by archive name."""
    found: list[tuple[str, Path]] = []
    stack: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def walk(directory: Path, rel: str) -> None:
        spec = _load_ignore(directory)
        if spec is not None:
            stack.append((rel, spec))
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _ALWAYS_SKIP and not _ignored(child, True, stack):
                    walk(Path(entry.path), child)
            elif entry.is_file() and not _ignored(child, False, stack):
                if entry.is_symlink():
                    _inside(root, child, Path(entry.path))
                found.append((child, Path(entry.path)))
        if spec is not None:
            stack.pop()

    walk(root, "")
    return sorted(found)


def _inside(root: Path, name: str, link: Path) -> None:
    """A symlink is shipped as the file it points to, so it must point inside the working
    dir: one to ~/.ssh/id_rsa would otherwise send that key to a remote site."""
    target = link.resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise PackageError(
            f"working dir entry {name} is a symlink to {target}, outside the working dir: "
            "remove it, copy the file in, or add it to .gitignore"
        )


def _entry(name: str, path: Path) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    executable = os.stat(path).st_mode & stat.S_IXUSR
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix, whatever the packing machine is
    return info


def pack(root: Path, max_bytes: int = DEFAULT_MAX_BYTES, advice: str = "") -> Package:
    """Zip `root` deterministically; PackageError (ending in `advice`) when the zip exceeds `max_bytes`."""
    root = root.expanduser()
    if not root.is_dir():
        raise PackageError(f"working dir {root} is not a directory")
    files = list_files(root)
    raw_total = sum(p.stat().st_size for _, p in files)
    if raw_total > 10 * max_bytes:  # hopeless even with good compression: do not zip gigabytes first
        _too_big(root, files, raw_total, max_bytes, "holds", advice)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, path in files:
            try:
                archive.writestr(_entry(name, path), path.read_bytes(), compresslevel=6)
            except OSError as exc:
                raise PackageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data = buffer.getvalue()
    if len(data) > max_bytes:
        _too_big(root, files, len(data), max_bytes, "packs to", advice)
    return Package(digest="sha256:" + hashlib.sha256(data).hexdigest(), data=data, files=len(files))


def _too_big(root: Path, files: list[tuple[str, Path]], size: int, limit: int, verb: str, advice: str) -> None:
    biggest = max(files, key=lambda f: f[1].stat().st_size)
    raise PackageError(
        f"working dir {root} {verb} {format_bytes(size)}, over the {format_bytes(limit)} limit "
        f"(largest file: {biggest[0]}, {format_bytes(biggest[1].stat().st_size)}): "
        f"add big files to .gitignore{advice}"
    )
