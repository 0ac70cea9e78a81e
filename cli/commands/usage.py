"""`minga usage report`: who consumed how many GPU-hours against how many they contributed."""

from __future__ import annotations

import csv
import enum
import sys
from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import Level, with_call
from minga.cli.parsing import flag_value, parse_duration

app = typer.Typer(help="Usage against contribution (reciprocity).", no_args_is_help=True)


class ReportOutput(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


COLUMNS = [
    "key",
    "country",
    "consumed_gpu_hours",
    "consumed_normalized",
    "contributed_gpu_hours",
    "contributed_normalized",
    "balance_normalized",
    "energy_kwh",
    "emissions_kgco2e",
]


@app.command("report")
@with_call()
def report(
    call: Call,
    since: Annotated[str, typer.Option("--since", help="Window ending now: 24h, 7d, 30d.")] = "30d",
    by: Annotated[Level, typer.Option("--by", help="Group by country, institution or project.")] = Level.institution,
    output: Annotated[ReportOutput, typer.Option("--output", "-o", help="table, json or csv.")] = ReportOutput.table,
) -> None:
    """GPU-hours consumed against GPU-hours contributed, raw and normalized by model weight,
    and the estimated energy and emissions of the runs that ended in the window."""
    seconds = flag_value("--since", parse_duration, since)
    with call.client() as c:
        usage = c.usage_report(seconds, by.value)
    lines = [
        {
            "key": line.key,
            "country": line.country,
            "consumed_gpu_hours": round(line.consumed_gpu_hours, 3),
            "consumed_normalized": round(line.consumed_normalized, 3),
            "contributed_gpu_hours": round(line.contributed_gpu_hours, 3),
            "contributed_normalized": round(line.contributed_normalized, 3),
            "balance_normalized": round(line.contributed_normalized - line.consumed_normalized, 3),
            "energy_kwh": round(line.energy_kwh, 3),
            "emissions_kgco2e": round(line.emissions_kgco2e, 3),
        }
        for line in usage.lines
    ]
    if output is ReportOutput.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    elif output is ReportOutput.json:
        render.print_json(
            {
                "since": render.iso_time(usage.since),
                "until": render.iso_time(usage.until),
                "by": usage.by,
                "lines": lines,
            }
        )
    else:
        render.usage_table(by.value, lines)
