"""The reciprocity report (common/usage.py) to and from `UsageReportResponse`."""

from __future__ import annotations

from minga.common.usage import UsageLine, UsageReport
from minga.v1 import admin_pb2


def usage_report_to_pb(r: UsageReport) -> admin_pb2.UsageReportResponse:
    return admin_pb2.UsageReportResponse(
        since=r.since,
        until=r.until,
        by=r.by,
        lines=[
            admin_pb2.UsageReportLine(
                key=line.key,
                country=line.country,
                consumed_gpu_hours=line.consumed_gpu_hours,
                consumed_normalized=line.consumed_normalized,
                contributed_gpu_hours=line.contributed_gpu_hours,
                contributed_normalized=line.contributed_normalized,
                energy_kwh=line.energy_kwh,
                emissions_kgco2e=line.emissions_kgco2e,
            )
            for line in r.lines
        ],
    )


def usage_report_from_pb(pb: admin_pb2.UsageReportResponse) -> UsageReport:
    return UsageReport(
        since=pb.since,
        until=pb.until,
        by=pb.by,
        lines=tuple(
            UsageLine(
                key=line.key,
                country=line.country,
                consumed_gpu_hours=line.consumed_gpu_hours,
                consumed_normalized=line.consumed_normalized,
                contributed_gpu_hours=line.contributed_gpu_hours,
                contributed_normalized=line.contributed_normalized,
                energy_kwh=line.energy_kwh,
                emissions_kgco2e=line.emissions_kgco2e,
            )
            for line in pb.lines
        ),
    )
