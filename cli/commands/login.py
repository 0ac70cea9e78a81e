"""`minga login`: check a token against the broker, then remember broker and token."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli import config, errors, render
from minga.cli.call import Call
from minga.cli.options import with_call

YourTokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Your token (from `minga admin user add`) (env MINGA_TOKEN).", show_default=False),
]


@with_call(token=YourTokenOpt)
def login(call: Call) -> None:
    """Check your token with the broker and save broker and token to the config file (mode 0600)."""
    conn = call.connection()
    if not conn.token:
        raise errors.usage_error("no token: pass --token TOKEN (from `minga admin user add`) or set MINGA_TOKEN")
    ca_file = conn.ca_file.expanduser().resolve() if conn.ca_file else None
    with (
        call.client(conn) as client,
        errors.explain(
            unauthenticated=f"broker at {conn.broker} rejected the token: check it, or ask your admin for a new one"
        ),
    ):
        me = client.whoami()
    settings = {"broker": str(conn.broker), "token": conn.token}
    if ca_file:
        settings["ca_file"] = str(ca_file)
    path = config.save_config(settings)
    who = render.whoami_to_dict(me)
    data = {**who, "broker": conn.broker, "config_file": str(path)}
    call.show(
        data,
        lambda: typer.echo(
            f"logged in to {conn.broker} as {who['name']} ({who['role']}"
            f"{', ' + who['institution'] if who['institution'] else ''}); settings saved to {path}"
        ),
    )
