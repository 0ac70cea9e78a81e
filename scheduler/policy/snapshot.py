"""The frozen input and output of one scheduling decision."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from scheduler.domain import Job, Run, Site


DEFAULT_MODEL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("H200", 1.2), ("H100", 1.0), ("A100", 0.6), ("L40S", 0.5), ("A10", 0.25),
    ("L4", 0.2), ("V100", 0.3), ("T4", 0.1),
)


@dataclass(frozen=True)
class ShareSettings:
    """The admin's fair-share policy (`minga admin policy show|set`)."""

    policy: str = "contribution"            # "contribution" or "static"
    half_life_seconds: float = 7 * 86400     # usage and contribution decay (Slurm's default)
    base_grant: float = 1.0                  # every institution's floor, in weight units
    model_weights: tuple[tuple[str, float], ...] = DEFAULT_MODEL_WEIGHTS  # unknown model: 1.0
    preemption_grace_seconds: float = 600.0  # runs younger than this are never preempted
    age_weight: float = 0.0                  # fair-share points per hour of waiting
    latency: tuple[tuple[str, str, int], ...] = ()  # (country, country, rank): lower is nearer


@dataclass(frozen=True)
class InstitutionShare:
    """One institution as the policy sees it."""

    slug: str
    country: str
    weight: float = 1.0                      # static weight as the admin set it
    contribution: float = 0.0                # decayed normalized GPU-hours its sites made available
    guarantee: tuple[tuple[str, int], ...] = ()  # explicit (model, GPUs); () = its own sites' capacity
    borrowing_limit: int | None = None       # GPUs it may use beyond its guarantee
    lending_limit: int | None = None         # GPUs of its own capacity it may lend out


@dataclass(frozen=True)
class ProjectShare:
    id: str                                   # "<institution>/<name>"
    institution: str
    weight: float = 1.0


@dataclass(frozen=True)
class Snapshot:
    """Everything the policy may look at: every known site, every live run, every pending job,
    and the account tree with its decayed usage. With no institutions the policy falls back
    to plain submit order, so the broker works before any tree exists."""

    sites: tuple[Site, ...]
    live_runs: tuple[Run, ...]
    pending: tuple[Job, ...]
    institutions: tuple[InstitutionShare, ...] = ()
    projects: tuple[ProjectShare, ...] = ()
    usage: tuple[tuple[str, float], ...] = ()  # project id -> decayed normalized GPU-seconds at `now`
    country_weights: tuple[tuple[str, float], ...] = ()  # explicit; default: sum of its institutions
    settings: ShareSettings = ShareSettings()


@dataclass(frozen=True)
class Placement:
    """Start `job_id` on `site`, taking `gpus` GPUs of `gpu_model` and `cpus` CPUs."""

    job_id: str
    site: str
    gpu_model: str
    gpus: int
    cpus: float


@dataclass(frozen=True)
class Waiting:
    """A job left pending, and the constraint that binds it."""

    job_id: str
    reason: str
    never_fits: bool = False


class WaitingList(Sequence[Waiting]):
    """`Decisions.waiting` as a cycle at queue depth builds it: one entry per pending job,
    kept as columns, each `Waiting` made only when read. Entry k is the job
    `jobs[positions[k]]` (of `Snapshot.pending`), waiting for `reasons[k]`.

    100,000 frozen dataclasses kept alive would cost more to build than the rest of the
    cycle, and would wake the garbage collector's full passes over the snapshot. It reads,
    and compares equal, like the tuple of `Waiting` it stands for.
    """

    __slots__ = ("_jobs", "_positions", "_reasons", "_never")

    def __init__(self, jobs: Sequence[Job], positions: list[int], reasons: list[str],
                 never_fits: list[bool]) -> None:
        self._jobs, self._positions, self._reasons, self._never = jobs, positions, reasons, never_fits

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, i: int) -> Waiting: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Waiting, ...]: ...

    def __getitem__(self, i: int | slice) -> Waiting | tuple[Waiting, ...]:
        if isinstance(i, slice):
            return tuple(self)[i]
        return Waiting(self._jobs[self._positions[i]].id, self._reasons[i], self._never[i])

    def __iter__(self) -> Iterator[Waiting]:
        ids = (job.id for job in map(self._jobs.__getitem__, self._positions))
        return map(Waiting, ids, self._reasons, self._never)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"WaitingList({list(self)!r})"


@dataclass(frozen=True)
class Preemption:
    """Stop `run_id` (its job goes back to PENDING) to give capacity back to its owner."""

    run_id: str
    job_id: str
    site: str
    reason: str


@dataclass(frozen=True)
class Decisions:
    placements: tuple[Placement, ...] = ()
    waiting: Sequence[Waiting] = ()       # a tuple, or a WaitingList from the fair-share cycle
    preemptions: tuple[Preemption, ...] = ()
