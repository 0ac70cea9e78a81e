"""Limits per user and per project: Slurm's QOS and association limits.

An `AccountLimit` caps one account: a project (`kind` "project", key "inst/project") as a
whole, or one user within a project (`kind` "user", key "inst/project/user": Slurm's
association is a user in an account). Each limit left None is unlimited:

- `max_gpus`: GPUs its live runs may hold at once (Slurm's GrpTRES=gres/gpu on the
  association, MaxTRESPerUser on a QOS); a job that would go over waits, held.
- `max_pending`: its jobs that may be pending at once (Slurm's MaxSubmitJobs); a submit
  over it is refused.
- `max_walltime_seconds`: the longest walltime a job may ask for (Slurm's MaxWall); a
  longer one (or none at all) is refused at submit, and a pending one over a lowered
  limit waits, held.

See docs/fairshare.md, "Limits per user and per project".
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT, USER = "project", "user"
KINDS = (PROJECT, USER)
UNLIMITED = -1  # on the wire and in the CLI: clear the limit


@dataclass(frozen=True, slots=True)
class AccountLimit:
    """The limits of one project or one user within a project; None: unlimited."""

    kind: str  # "project" or "user"
    key: str  # "inst/project", or "inst/project/user"
    max_gpus: int | None = None
    max_pending: int | None = None
    max_walltime_seconds: int | None = None

    @property
    def project(self) -> str:
        """The project id ("inst/project") it limits, or its user within."""
        return self.key if self.kind == PROJECT else self.key.rsplit("/", 1)[0]

    @property
    def user(self) -> str:
        """The user it limits ("" for a project's limit)."""
        return "" if self.kind == PROJECT else self.key.rsplit("/", 1)[1]

    @property
    def institution(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def empty(self) -> bool:
        """No limit left: the account is unlimited, and nothing needs storing."""
        return self.max_gpus is None and self.max_pending is None and self.max_walltime_seconds is None

    def describe(self) -> str:
        """'user alice of project uchile/nlp' or 'project uchile/nlp', for messages."""
        return f"user {self.user} of project {self.project}" if self.kind == USER else f"project {self.key}"


def user_key(project: str, user: str) -> str:
    """The key of a user's limits within `project` ("inst/project")."""
    return f"{project}/{user}"


def format_duration(seconds: int) -> str:
    """Seconds the way the CLI takes them: '2d', '36h', '90m', '45s' (the largest whole unit)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
