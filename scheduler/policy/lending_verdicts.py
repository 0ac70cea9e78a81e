"""Site owners' lending policies in the cycle (the rules themselves: `common/lending.py`).

Built once per `schedule()` call, and only for the sites that have a policy, so a
federation without policies pays nothing: the cycle keeps `lending = None` and every
check is skipped. A site's verdict on a job depends on the job's institution, its
country, walltime, environment names and pip packages, and is memoized per site on
exactly those; only the GPUs lent at once change within a cycle.

When a site's lending window closes, guests' runs there are preempted under the same
rules as reclaim (`preemption.py`): never a run younger than the preemption grace, and a
non-preemptible run only when its institution is borrowing beyond its guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable

from minga.common.domain import Job, JobSpec, Run, Site
from minga.common.lending import (
    LendingPolicy,
    borrower_refusal,
    lending_open,
    pip_name,
    runtime_refusal,
    walltime_refusal,
    windows_text,
)
from minga.common.snapshot import Snapshot
from minga.scheduler.policy.guarantees import Ledger

JobKey = tuple[str, str, int, frozenset[str], frozenset[str]]
"""(institution, its country, walltime, env names, pip distribution names)."""

RuntimeKey = tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...]]
"""(env pairs, pip lines, secret env names): what sites' runtime rules read of a job."""

_UNSET = object()


class SiteRules:
    """One site's policy for one cycle: open now or not, GPUs lent, verdicts by job key."""

    __slots__ = ("site", "owner", "policy", "open", "closed_reason", "lent", "_memo")

    def __init__(self, site: Site, policy: LendingPolicy, now: float) -> None:
        self.site = site.name
        self.owner = site.institution
        self.policy = policy
        self.open = lending_open(policy, now)
        self.closed_reason = None if self.open else f"lending: site {site.name} lends {windows_text(policy)}"
        self.lent = 0  # GPUs guests hold here: live runs and this cycle's placements
        self._memo: dict[JobKey, str | None] = {}

    def refusal(self, key: JobKey, gpus: int) -> str | None:
        """Why a job with `key` asking for `gpus` may not be placed here now, or None."""
        reason = self._memo.get(key, _UNSET)
        if reason is _UNSET:
            reason = self._memo[key] = self._static(key)
        if reason is None and gpus and key[0] != self.owner:
            limit = self.policy.max_lent_gpus
            if limit is not None and self.lent + gpus > limit:
                return f"lending: site {self.site} lends at most {limit} GPUs at once ({self.lent} lent now)"
        return reason  # type: ignore[return-value]  # never _UNSET here: memoized just above

    def _static(self, key: JobKey) -> str | None:
        institution, country, walltime, env, pip = key
        runtime = runtime_refusal(self.policy, self.site, env, pip)
        if runtime or institution == self.owner:
            return runtime
        return (
            borrower_refusal(self.policy, self.site, institution, country)
            or walltime_refusal(self.policy, self.site, walltime)
            or self.closed_reason
        )


class Lending:
    """Every policy of the snapshot, with what guests hold on each site."""

    def __init__(self, snapshot: Snapshot, now: float, home: dict[str, str]) -> None:
        sites = {s.name: s for s in snapshot.sites}
        self.home = home  # institution -> its country
        self.rules = {
            name: SiteRules(sites[name], policy, now) for name, policy in sorted(snapshot.lending) if name in sites
        }
        for run in snapshot.live_runs:
            rules = self.rules.get(run.site)
            if rules is not None and run.institution != rules.owner:
                rules.lent += run.gpus

    @classmethod
    def start(cls, snapshot: Snapshot, now: float, home: dict[str, str]) -> Lending | None:
        """None when no site has a policy: the cycle then checks nothing."""
        return cls(snapshot, now, home) if snapshot.lending else None

    def key(self, job: Job) -> JobKey:
        """What the sites' verdicts depend on. Secret environment values reach the cluster
        as environment variables too, so their names count like the others'."""
        env = job.spec.runtime_env
        names = frozenset(k for k, _ in env.env).union(k for k, _ in job.spec.secret_env)
        return (
            job.institution,
            self.home.get(job.institution, ""),
            job.spec.walltime_seconds,
            names,
            frozenset(map(pip_name, env.pip)),
        )

    def refusal(self, key: JobKey, site: str, gpus: int) -> str | None:
        rules = self.rules.get(site)
        return None if rules is None else rules.refusal(key, gpus)

    def placed(self, site: str, institution: str, gpus: int) -> None:
        rules = self.rules.get(site)
        if rules is not None and institution != rules.owner:
            rules.lent += gpus

    def closing(self, live_runs: Iterable[Run], ledger: Ledger, now: float, grace: float) -> list[tuple[Run, str, str]]:
        """Guests' runs to preempt because their site's window is closed, with the reason and
        the site's owner.

        Reclaim's rules: runs past the grace period only; a non-preemptible run only while
        its institution is above its guarantee for the model by at least the run's GPUs.
        Each chosen run is released from `ledger`, as reclaim does.
        """
        closed = {name: r for name, r in self.rules.items() if not r.open}
        if not closed:
            return []
        chosen = []
        for run in sorted(live_runs, key=lambda r: (-r.started_at, r.id)):
            rules = closed.get(run.site)
            if rules is None or run.institution == rules.owner or now - run.started_at < grace:
                continue
            if not run.preemptible and ledger.excess(run.institution, run.gpu_model) < run.gpus:
                continue
            if run.gpus:
                ledger.release(run.institution, rules.owner, run.gpu_model, run.gpus)
            chosen.append(
                (run, f"{rules.closed_reason}; guests' runs stop when its lending window closes", rules.owner)
            )
        return sorted(chosen, key=lambda c: c[0].id)


def runtime_key(spec: JobSpec) -> RuntimeKey:
    """What sites' runtime rules read of a job (env names, pip lines, secret env names),
    for memo keys: jobs equal on it get the same runtime verdict everywhere."""
    return spec.runtime_env.env, spec.runtime_env.pip, tuple(k for k, _ in spec.secret_env)


def most_telling(reasons: Iterable[str]) -> str | None:
    """One waiting reason out of the sites' refusals, naming how many more sites refused."""
    distinct = sorted(set(reasons))
    if not distinct:
        return None
    more = len(distinct) - 1
    return distinct[0] + (f" (and {more} more site refusal{'s' if more > 1 else ''})" if more else "")


def is_refusal(reason: str) -> bool:
    return reason.startswith(("lending: ", "runtime: "))
