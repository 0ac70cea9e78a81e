"""`minga login`: check a token against the broker, then remember broker and token."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import config, errors, render
from ..options import OutputOpt, open_client
from ..render import Output


def login(
    broker: Annotated[str, typer.Option("--broker", help="Broker address HOST:PORT.")],
    token: Annotated[str, typer.Option("--token", help="Your token (from `minga admin user add`).")],
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate (PEM) of the broker's TLS.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Check TOKEN with the broker and save both to the config file (mode 0600)."""
    ca_file = ca.expanduser().resolve() if ca else None
    conn = config.Connection(broker=broker, token=token, ca_file=ca_file)
    with open_client(conn) as client, errors.explain(
        unauthenticated=f"broker at {broker} rejected the token: check it, or ask your admin for a new one"
    ):
        me = client.whoami()
    settings = {"broker": broker, "token": token}
    if ca_file:
        settings["ca_file"] = str(ca_file)
    path = config.save_config(settings)
    who = render.whoami_to_dict(me)
    data = {**who, "broker": broker, "config_file": str(path)}
    render.show(output, data, lambda: typer.echo(
        f"logged in to {broker} as {who['name']} ({who['role']}"
        f"{', ' + who['institution'] if who['institution'] else ''}); settings saved to {path}"
    ))
