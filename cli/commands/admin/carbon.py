"""`minga admin carbon show|set|site|gpu`: the figures behind the energy and emissions
estimates (grid intensity, site PUE, GPU board power); docs/carbon.md."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.render_carbon import carbon_tables, carbon_to_dict

app = typer.Typer(help="Grid intensity, site PUE and GPU power behind the energy estimates.", no_args_is_help=True)


@app.command("show")
@with_call()
def show(call: Call) -> None:
    """Every figure in force, with its source and year (or who set it when); FALLBACK marks a
    country without a figure of its own."""
    with call.client() as c:
        data = carbon_to_dict(c.get_carbon())
    call.show(data, lambda: carbon_tables(data))


@app.command("set")
@with_call()
def set_country(
    call: Call,
    country: Annotated[str, typer.Argument(metavar="CC", help="ISO 3166-1 alpha-2 country code, e.g. PE.")],
    value: Annotated[float, typer.Argument(metavar="VALUE", help="Grid intensity in gCO2e/kWh.")],
) -> None:
    """Set a country's annual grid intensity (admin)."""
    with call.client() as c:
        data = carbon_to_dict(c.set_carbon("country", country, intensity=value))
    call.show(data, lambda: typer.echo(f"{country}: {value:g} gCO2e/kWh"))


@app.command("site")
@with_call()
def set_site(
    call: Call,
    site: Annotated[str, typer.Argument(help="A site name.")],
    intensity: Annotated[
        float | None, typer.Option("--intensity", help="The site's own gCO2e/kWh (own solar, hydro...).")
    ] = None,
    pue: Annotated[float | None, typer.Option("--pue", help="The site's power usage effectiveness (>= 1).")] = None,
) -> None:
    """Set a site's own grid intensity and/or PUE (admin); they win over its country's."""
    if intensity is None and pue is None:
        raise typer.BadParameter("give --intensity, --pue or both")
    with call.client() as c:
        data = carbon_to_dict(c.set_carbon("site", site, intensity=intensity, pue=pue))
    call.show(data, lambda: typer.echo(f"site {site}: set"))


@app.command("gpu")
@with_call()
def set_gpu(
    call: Call,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A GPU model, e.g. A100.")],
    watts: Annotated[float, typer.Argument(metavar="WATTS", help="Board power in watts.")],
) -> None:
    """Set a GPU model's power draw in watts (admin)."""
    with call.client() as c:
        data = carbon_to_dict(c.set_carbon("gpu", model, watts=watts))
    call.show(data, lambda: typer.echo(f"{model}: {watts:g} W"))
