"""Job arrays (Slurm's `--array`): parsing the index spec and naming the tasks.

A spec is a comma-separated list of indices (`7`), ranges (`0-999`) and stepped
ranges (`0-99:2`), optionally followed by `%K` to run at most K tasks at once, as
Slurm's sbatch accepts it. Each task is a job of its own, `<array id>_<index>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minga.common.domain import InvalidArgument

MAX_ARRAY_TASKS = 100_000  # tasks in one array (Slurm's default MaxArraySize is 1001)
MAX_ARRAY_INDEX = 9_999_999  # the largest index a task may have
MAX_SPEC_CHARS = 4096

_ITEM = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


@dataclass(frozen=True)
class ArraySpec:
    """A parsed `--array` value: the sorted distinct indices and the running cap (0: none)."""

    indices: tuple[int, ...]
    limit: int = 0
    text: str = ""


def parse_array(text: str) -> ArraySpec:
    """Parse `0-999%4`, `1,3,5-9`, `0-99:2`; InvalidArgument says what is wrong."""
    text = text.strip()
    if not text:
        raise InvalidArgument("array: the index spec is empty (e.g. 0-99, 1,3,5-9, 0-99:2, 0-999%4)")
    if len(text) > MAX_SPEC_CHARS:
        raise InvalidArgument(f"array: the index spec is {len(text)} characters; the limit is {MAX_SPEC_CHARS}")
    body, sep, cap = text.partition("%")
    limit = 0
    if sep:
        if not cap.isdigit():
            raise InvalidArgument(f"array: {text!r}: after % comes the number of tasks that may run at once")
        limit = int(cap)
        if limit < 1:
            raise InvalidArgument(f"array: {text!r}: %{cap} would let no task run; K must be at least 1")
    indices: set[int] = set()
    for item in body.split(","):
        indices.update(_expand(item.strip(), text))
        if len(indices) > MAX_ARRAY_TASKS:
            break
    if len(indices) > MAX_ARRAY_TASKS:
        raise InvalidArgument(f"array: {text!r} has more than {MAX_ARRAY_TASKS:,} tasks, the most one array may have")
    return ArraySpec(tuple(sorted(indices)), limit, text)


def _expand(item: str, text: str) -> range:
    m = _ITEM.match(item)
    if not m:
        raise InvalidArgument(f"array: {text!r}: {item!r} is not an index, a range A-B or a stepped range A-B:S")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    step = int(m.group(3)) if m.group(3) is not None else 1
    if last < first:
        raise InvalidArgument(f"array: {text!r}: the range {item} runs backwards")
    if step < 1:
        raise InvalidArgument(f"array: {text!r}: the step of {item} must be at least 1")
    if last > MAX_ARRAY_INDEX:
        raise InvalidArgument(f"array: {text!r}: index {last} is above the largest allowed, {MAX_ARRAY_INDEX:,}")
    if (last - first) // step + 1 > MAX_ARRAY_TASKS:
        raise InvalidArgument(f"array: {text!r} has more than {MAX_ARRAY_TASKS:,} tasks, the most one array may have")
    return range(first, last + 1, step)


def task_id(array_id: str, index: int) -> str:
    """The job id of an array's task: `j-abc_17`."""
    return f"{array_id}_{index}"
