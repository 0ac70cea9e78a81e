"""The reciprocity report: GPU-hours consumed against GPU-hours contributed in a window,
raw and normalized by the model weights (`minga usage report`); and the share history:
each country's GPUs held over time, for the dashboard's fair-share chart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class UsageLine:
    key: str  # the country, institution or project
    country: str = ""
    consumed_gpu_hours: float = 0.0
    consumed_normalized: float = 0.0
    contributed_gpu_hours: float = 0.0  # 0 for projects: sites belong to institutions
    contributed_normalized: float = 0.0
    energy_kwh: float = 0.0  # estimated, runs ended in the window (docs/carbon.md)
    emissions_kgco2e: float = 0.0


@dataclass(frozen=True)
class UsageReport:
    since: float  # unix seconds
    until: float
    by: str  # "country", "institution" or "project"
    lines: tuple[UsageLine, ...] = ()


@dataclass(frozen=True)
class ShareHistory:
    """Each country's mean GPUs held, and the federation's mean GPUs up, in `buckets`
    equal time buckets of [since, until) (`ReportsRepo.share_history`): the dashboard's
    chart of each country's share over the last day.

    `held[country][i]` is the GPU-seconds that country's institutions' runs held in bucket
    i, divided by the bucket's seconds: its mean GPUs in use there. `capacity[i]` is the
    same mean for the GPUs sites served (their uptime segments). Runs whose institution
    is unknown count under the country "" (as in the usage report).
    """

    since: float  # unix seconds
    until: float
    bucket_seconds: float
    countries: tuple[str, ...]  # sorted; those that held GPUs in the window
    held: Mapping[str, tuple[float, ...]]  # country: mean GPUs held, one per bucket
    capacity: tuple[float, ...]  # the federation's mean GPUs up, one per bucket

    def __post_init__(self) -> None:
        frozen = {c: tuple(self.held.get(c, ())) for c in self.countries}
        if any(len(values) != len(self.capacity) for values in frozen.values()):
            raise ValueError("every country needs one value per bucket")
        object.__setattr__(self, "held", MappingProxyType(frozen))

    @property
    def buckets(self) -> int:
        return len(self.capacity)

    @property
    def starts(self) -> tuple[float, ...]:
        """Each bucket's start (unix seconds)."""
        return tuple(self.since + i * self.bucket_seconds for i in range(self.buckets))

    @property
    def midpoints(self) -> tuple[float, ...]:
        """Each bucket's middle: where a chart puts its mean."""
        return tuple(start + self.bucket_seconds / 2 for start in self.starts)

    def total_held(self) -> tuple[float, ...]:
        """The federation's mean GPUs in use, all countries together, per bucket."""
        return tuple(sum(column) for column in zip(*self.held.values(), strict=True)) or (0.0,) * self.buckets

    def share(self, country: str) -> tuple[float, ...]:
        """`country`'s fraction of the GPUs in use in each bucket; 0 where nothing ran.

        The denominator is what all countries held together, not the capacity: the shares
        then sum to 1 in every bucket where anything ran, so the chart shows who got the
        GPUs that were used, which is what fair share decides (idle GPUs are no one's).
        How busy the federation was is `utilization()`. A country not in `countries`
        held nothing: all zeros.
        """
        mine = self.held.get(country, (0.0,) * self.buckets)
        return tuple(m / total if total > 0 else 0.0 for m, total in zip(mine, self.total_held(), strict=True))

    def utilization(self) -> tuple[float, ...]:
        """Mean GPUs in use over mean GPUs up, per bucket; 0 where no GPU was up.

        Not clamped: uptime segments are extended at each charging step while a running
        run counts up to `until`, so the last bucket may read slightly above 1.
        """
        return tuple(t / c if c > 0 else 0.0 for t, c in zip(self.total_held(), self.capacity, strict=True))
