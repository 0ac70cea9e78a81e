"""Energy and emissions figures (`minga.common.carbon`) to and from `CarbonFigures`."""

from __future__ import annotations

from minga.common import carbon
from minga.v1 import admin_pb2


def _figure_to_pb(key: str, f: carbon.Figure) -> admin_pb2.CarbonFigure:
    return admin_pb2.CarbonFigure(
        key=key, value=f.value, source=f.source, year=f.year, set_at=f.set_at, fallback=f.source.startswith("fallback")
    )


def _figure_from_pb(pb: admin_pb2.CarbonFigure) -> carbon.Figure:
    return carbon.Figure(pb.value, pb.source, pb.year, pb.set_at)


def figures_to_pb(f: carbon.CarbonFigures) -> admin_pb2.CarbonFigures:
    sites = [
        admin_pb2.SiteCarbon(
            site=name,
            intensity=intensity.value if intensity else None,
            pue=pue.value if pue else None,
        )
        for name, (intensity, pue) in f.sites.items()
    ]
    return admin_pb2.CarbonFigures(
        countries=[_figure_to_pb(k, v) for k, v in f.countries.items()],
        gpus=[_figure_to_pb(k, v) for k, v in f.gpus.items()],
        sites=sites,
        default_pue=carbon.DEFAULT_PUE,
    )


def figures_from_pb(pb: admin_pb2.CarbonFigures) -> carbon.CarbonFigures:
    sites = {
        s.site: (
            carbon.Figure(s.intensity, "admin") if s.HasField("intensity") else None,
            carbon.Figure(s.pue, "admin") if s.HasField("pue") else None,
        )
        for s in pb.sites
    }
    return carbon.CarbonFigures(
        countries={c.key: _figure_from_pb(c) for c in pb.countries},
        sites=sites,
        gpus={g.key: _figure_from_pb(g) for g in pb.gpus},
    )
