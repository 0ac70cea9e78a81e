"""How `minga job` shows job arrays: one line per array in `job list`, and its tasks
counted by state in `job status` (each task is a job, `<array id>_<index>`)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from minga.cli.parsing import format_duration
from minga.cli.render import _dash, iso_time

if TYPE_CHECKING:
    from minga.common.domain import ArraySummary

JsonDict = dict[str, Any]


def array_to_dict(a: ArraySummary) -> JsonDict:
    return {
        "id": a.id,
        "type": "array",
        "name": a.name,
        "owner": a.owner,
        "institution": a.institution,
        "project": a.project or None,
        "tasks": a.tasks,
        "indices": a.indices,
        "limit": a.limit or None,
        "submitted_at": iso_time(a.submitted_at),
        "counts": {
            "pending": a.pending,
            "running": a.running,
            "succeeded": a.succeeded,
            "failed": a.failed,
            "cancelled": a.cancelled,
        },
    }


def array_state(a: JsonDict) -> str:
    """RUNNING while a task runs, else PENDING while one waits, else DONE."""
    c = a["counts"]
    return "RUNNING" if c["running"] else "PENDING" if c["pending"] else "DONE"


def array_counts(a: JsonDict) -> str:
    """ "1000 tasks: 4 run, 996 wait (%4)": the nonzero counts, on one line."""
    c = a["counts"]
    words = [
        ("run", c["running"]),
        ("wait", c["pending"]),
        ("ok", c["succeeded"]),
        ("failed", c["failed"]),
        ("cancelled", c["cancelled"]),
    ]
    parts = ", ".join(f"{n} {w}" for w, n in words if n)
    cap = f" (%{a['limit']})" if a["limit"] else ""
    return f"{a['tasks']} tasks: {parts}{cap}"


def array_row(a: JsonDict, now: float) -> list[str]:
    """A `job list` row: ID, NAME, STATE, GPUS, AGE, SITE / REASON."""
    submitted = datetime.fromisoformat(a["submitted_at"]).timestamp() if a["submitted_at"] else now
    return [f"{a['id']}_*", _dash(a["name"]), array_state(a), "-", format_duration(now - submitted), array_counts(a)]


def array_detail(a: JsonDict) -> None:
    """`minga job status ARRAY_ID`: the array, then its tasks counted by state."""
    c = a["counts"]
    fields = [
        ("id", a["id"]),
        ("name", a["name"] or "-"),
        ("state", array_state(a)),
        ("owner", f"{a['owner']} ({a['institution']})"),
        ("tasks", f"{a['tasks']} (indices {a['indices']})"),
        ("at once", f"at most {a['limit']}" if a["limit"] else "no limit"),
        ("submitted", a["submitted_at"] or "-"),
        ("pending", c["pending"]),
        ("running", c["running"]),
        ("succeeded", c["succeeded"]),
        ("failed", c["failed"]),
        ("cancelled", c["cancelled"]),
        ("tasks are", f"jobs {a['id']}_<index>: minga job status {a['id']}_<index>"),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        sys.stdout.write(f"{key:<{width}}  {value}\n")
