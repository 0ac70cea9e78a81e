"""The frozen input and output of one scheduling decision: what the store loads for the
policy (`Snapshot`) and what it applies (`Decisions`). Neutral values, so the store
never imports the policy (DESIGN.md, layers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from minga.common.domain import Job, Run, Site
from minga.common.lending import LendingPolicy
from minga.common.limits import AccountLimit
from minga.common.shares import InstitutionShare, ProjectShare, ShareSettings


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
    user_usage: tuple[tuple[str, float], ...] = ()  # user leaf "inst/project/user" -> the same, per user
    user_weights: tuple[tuple[str, float], ...] = ()  # user leaf -> its weight among its project's users (default 1)
    country_weights: tuple[tuple[str, float], ...] = ()  # explicit; default: sum of its institutions
    settings: ShareSettings = ShareSettings()
    lending: tuple[tuple[str, LendingPolicy], ...] = ()  # site name -> its owner's lending policy
    array_live: tuple[tuple[str, int], ...] = ()  # each capped array with pending tasks -> its tasks holding GPUs (%K)
    account_limits: tuple[AccountLimit, ...] = ()  # limits per user and per project (Slurm's QOS/association)
    # site -> its grid intensity (gCO2e/kWh, `carbon.resolve_intensity`), for low-carbon placement;
    # a site left out gets its country's shipped default.
    intensity: tuple[tuple[str, float], ...] = ()
    # The pending jobs' columns, when the leader keeps them up to date (`policy.pending_columns.Pending`,
    # for exactly `pending`); else the policy reads them from the jobs. Not part of what the snapshot says.
    columns: object = field(default=None, compare=False, repr=False)


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


@dataclass(frozen=True)
class Preemption:
    """Stop `run_id` (its job goes back to PENDING) to give its GPUs to another account.

    `kind` says which rule preempted it: "fair-share" (`fair_preemption.py`), "reclaim"
    (an owner below its guarantee, `reclaim.py`) or "lending-window" (the site's lending
    window closed); `beneficiary` is the institution it makes room for, and `for_job` the
    job placed on its GPUs ("" for a closing window).
    """

    run_id: str
    job_id: str
    site: str
    reason: str
    kind: str = ""
    beneficiary: str = ""
    for_job: str = ""


@dataclass(frozen=True)
class Decisions:
    placements: tuple[Placement, ...] = ()
    waiting: Sequence[Waiting] = ()  # a tuple, or a WaitingList (`waiting_list.py`)
    preemptions: tuple[Preemption, ...] = ()
