"""How near one country is to another, for the data-country placement preference.

The admin may set a latency rank per country pair (``ShareSettings.latency``,
lower is nearer). By default: the same country 0, the same Latin American
subregion 1, elsewhere 2. The subregions are the usual UN-style grouping.
"""

from __future__ import annotations

from collections.abc import Iterable

SUBREGIONS: dict[str, str] = {
    **{c: "southern-cone" for c in ("AR", "CL", "UY", "PY")},
    **{c: "andean" for c in ("BO", "PE", "EC", "CO", "VE")},
    "BR": "brazil",
    **{c: "central-america-mexico" for c in ("MX", "GT", "HN", "SV", "NI", "CR", "PA", "BZ")},
    **{c: "caribbean" for c in ("CU", "DO", "PR", "JM", "HT", "TT")},
}


def default_rank(a: str, b: str) -> int:
    if a == b:
        return 0
    sa = SUBREGIONS.get(a)
    return 1 if sa is not None and sa == SUBREGIONS.get(b) else 2


def rank_table(latency: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """The admin's ranks, symmetric: (a, b) and (b, a) alike."""
    table: dict[tuple[str, str], int] = {}
    for a, b, rank in latency:
        table[(a, b)] = rank
        table[(b, a)] = rank
    return table


def country_groups(origin: str, countries: Iterable[str], table: dict[tuple[str, str], int]) -> list[list[str]]:
    """`countries` grouped by rank from `origin`, nearest group first, each group sorted."""
    by_rank: dict[int, list[str]] = {}
    for c in sorted(set(countries)):
        rank = table.get((origin, c), default_rank(origin, c))
        by_rank.setdefault(rank, []).append(c)
    return [by_rank[r] for r in sorted(by_rank)]
