"""`minga token rotate` and `list`: your own credential (replace it, e.g. after it may
have leaked or before it expires; see when it expires)."""

from __future__ import annotations

import typer

from minga.cli import config, errors, render
from minga.cli.options import BrokerOpt, CaOpt, OutputOpt, TokenOpt, connection, open_client
from minga.cli.render import Output

app = typer.Typer(help="Your own credential.", no_args_is_help=True)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Get a new token and revoke the one you call with, at once. If that token is the
    one saved by `minga login`, the config file gets the new one."""
    conn = connection(ctx, broker, token, ca)
    with open_client(conn) as client, errors.explain():
        answer = client.rotate_token()
    saved = config.load_config()
    updated = saved.get("token") == conn.token
    if updated:
        config.save_config({**saved, "token": answer.token})
    data = {"token": answer.token, "expires_at": render.iso_time(answer.expires_at), "config_file_updated": updated}

    def human() -> None:
        typer.echo(
            "your old token no longer works"
            + (" (the config file has the new one)" if updated else "; the new one follows, shown only once:"),
            err=True,
        )
        if not updated:
            typer.echo(answer.token)

    render.show(output, data, human)


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Your own tokens: when each was made, when it expires, whether it is revoked."""
    conn = connection(ctx, broker, token, ca)
    with open_client(conn) as client, errors.explain():
        me = client.whoami()
        items = [render.token_to_dict(t) for t in client.list_tokens(me.name)]
    render.show(output, items, lambda: render.tokens_table(items))
