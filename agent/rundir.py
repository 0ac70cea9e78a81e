"""Every run starts in a fresh, empty, private (0700) directory of its own.

Without this a job's entrypoint inherits the cwd of the Ray worker that starts it,
which is wherever `ray start` (or `minga up`, or the agent) was launched: a job's
`python train.py` found the agent's own files (issue 11, docs/security.md).

The directory is made by the entrypoint's own shell, on whichever node Ray starts
the entrypoint: a site's Ray cluster may have many nodes, and the agent may reach
its dashboard from another machine, so a directory made by the agent would not
exist where the job runs. `mktemp -d` makes it 0700 with a name no other run
shares; an EXIT trap removes it when the entrypoint ends, also when it is stopped
with SIGTERM (or SIGINT). A job killed by SIGKILL (it outlived its stop notice)
leaves its directory behind, still 0700.

With a working-dir package Ray unpacks it into its own per-node cache, shared by
every run of the same package; the run gets a private copy of it instead, so one
run's outputs never show up in the next run's directory.
"""

from __future__ import annotations

RUN_DIR_VAR = "MINGA_RUN_DIR"
RUN_DIR_TEMPLATE = "minga-run.XXXXXXXX"
SETUP_FAILED = 125  # the directory could not be made: the shell exits before the job starts


def private_dir_entrypoint(entrypoint: str, copy_cwd: bool = False) -> str:
    """`entrypoint` wrapped to run in a fresh private directory, removed when it ends.

    `copy_cwd`: copy the directory Ray started the entrypoint in (an unpacked package)
    into the fresh one first. The directory's path is exported as MINGA_RUN_DIR and
    read-only, so the job can neither move the cleanup elsewhere nor lose track of it.
    """
    var = RUN_DIR_VAR
    steps = [
        f'{var}=$(mktemp -d "${{TMPDIR:-/tmp}}/{RUN_DIR_TEMPLATE}") || exit {SETUP_FAILED}',
        f"readonly {var}",
        f"export {var}",
        f"trap 'cd / && rm -rf \"${var}\"' EXIT",
        "trap 'exit 143' TERM",
        "trap 'exit 130' INT",
    ]
    if copy_cwd:
        steps.append(f'cp -R ./. "${var}/" || exit {SETUP_FAILED}')
    steps.append(f'cd "${var}" || exit {SETUP_FAILED}')
    return "; ".join(steps) + ";\n" + entrypoint
