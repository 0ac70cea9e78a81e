"""`minga admin site-token create`: one-time tokens that let a site join."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from minga.cli import errors, render
from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_country, parse_duration

app = typer.Typer(help="One-time tokens that let a site join.", no_args_is_help=True)


@app.command("create")
@with_call()
def create(
    call: Call,
    institution: Annotated[str, typer.Option("--institution", help="Slug of the institution that owns the site.")],
    site: Annotated[str, typer.Option("--site", help="Name of the site, e.g. uchile-dcc.")],
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="How long the token stays valid: 90s, 30m, 24h, 7d.", show_default="24h"),
    ] = None,
    country: Annotated[
        str | None, typer.Option("--country", help="Site country if not the institution's.", show_default=False)
    ] = None,
) -> None:
    """Create a one-time join token for a site; give it to the site's operator."""
    ttl_seconds = flag_value("--ttl", parse_duration, ttl) if ttl else 0
    if ttl and ttl_seconds <= 0:
        raise typer.BadParameter("must be longer than 0s", param_hint="--ttl")
    cc = flag_value("--country", parse_country, country) if country else ""
    conn = call.connection()
    with call.client(conn) as c, errors.explain(not_found=f"no institution {institution}"):
        resp = c.create_site_token(institution, site, ttl_seconds, cc)
        address = c.address
    data = {"site": resp.site, "token": resp.token, "expires_at": render.iso_time(resp.expires_at)}
    # The whole join line, CA included, so that it works when pasted at the site.
    ca_flag = f" --ca {shlex.quote(str(conn.ca_file.expanduser().resolve()))}" if conn.ca_file else ""

    def human() -> None:
        typer.echo(
            f"join token for site {resp.site} (expires {data['expires_at']}); at the site run:\n"
            f"  minga site join --broker {address} --token <TOKEN>{ca_flag}\nthe token follows:",
            err=True,
        )
        typer.echo(resp.token)

    call.show(data, human)
