"""What a working-dir package may hold, checked where it enters (the broker's upload)
and again where it is unpacked (the agent): a zip of plain files and directories whose
names stay inside the directory it unpacks into.

The broker never unpacks a package; it reads the zip's directory only, so a hostile
archive is refused before any site fetches it, and the researcher hears why at once.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from pathlib import PurePosixPath

from minga.common.domain import InvalidArgument

MAX_ENTRIES = 100_000
MAX_UNPACKED_BYTES = 4 * 1024**3
_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name(name: str) -> str | None:
    """Why entry `name` could land outside its directory, or None when it cannot."""
    if not name:
        return "an empty name"
    if name.startswith("/") or _DRIVE.match(name):
        return "an absolute path"
    if "\\" in name:
        return "a backslash (a Windows path separator)"
    if "\0" in name:
        return "a NUL character"
    if ".." in PurePosixPath(name).parts:
        return "a '..' component"
    return None


def entry_kind(info: zipfile.ZipInfo) -> str:
    """'dir', 'file', or what else the entry's unix mode says it is (a symlink...)."""
    if info.is_dir():
        return "dir"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded, a plain file
    if kind in (0, stat.S_IFREG):
        return "file"
    return "symlink" if kind == stat.S_IFLNK else "special file"


def check_archive(data: bytes, field: str = "package") -> None:
    """Refuse (InvalidArgument naming `field`) a package that is no zip, holds links or
    special files, names that escape, or too many or too large entries."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InvalidArgument(f"{field} is not a zip archive ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ENTRIES:
            raise InvalidArgument(f"{field} holds {len(members)} entries; the limit is {MAX_ENTRIES}")
        total = 0
        for info in members:
            why = unsafe_name(info.filename)
            if why is not None:
                raise InvalidArgument(f"{field} entry {info.filename[:200]!r} has {why}")
            kind = entry_kind(info)
            if kind not in ("dir", "file"):
                raise InvalidArgument(
                    f"{field} entry {info.filename[:200]!r} is a {kind}; only plain files and directories are shipped"
                )
            total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise InvalidArgument(f"{field} unpacks to {total} bytes; the limit is {MAX_UNPACKED_BYTES}")
