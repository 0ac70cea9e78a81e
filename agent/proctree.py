"""Process-tree helpers (Linux /proc), so a launcher can stop exactly the processes
it started, including ones that left its process group, and never a stranger that
reused a PID."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

# A process is identified by (pid, start time in clock ticks): PIDs get reused.
ProcessKey = tuple[int, int]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rfind(")") + 2 :].split()


def _parent_and_start(pid: int) -> tuple[int, int] | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state(0) ppid(1) ... starttime is field 22 overall, index 19 here.
    return int(fields[1]), int(fields[19])


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None if it is gone."""
    info = _parent_and_start(pid)
    return None if info is None else info[1]


def descendants(root: int) -> list[ProcessKey]:
    """`root` and every live process below it, as (pid, start time) keys."""
    parents: dict[int, list[ProcessKey]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = _parent_and_start(int(entry))
        if info is not None:
            parents.setdefault(info[0], []).append((int(entry), info[1]))
    root_start = start_time(root)
    if root_start is None:
        return []
    found: list[ProcessKey] = [(root, root_start)]
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child in parents.get(pid, []):
            found.append(child)
            frontier.append(child[0])
    return found


def alive(key: ProcessKey) -> bool:
    """True if the process `key` names still runs (and is not a zombie)."""
    fields = _stat_fields(key[0])
    return fields is not None and fields[0] != "Z" and int(fields[19]) == key[1]


def kill(key: ProcessKey, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process `key` names, if it is still that process."""
    if alive(key):
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(key[0], sig)
