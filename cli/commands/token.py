"""`minga token rotate` and `list`: your own credential (replace it, e.g. after it may
have leaked or before it expires; see when it expires); `webhook-secret`: the secret your
job notifications are signed with (docs/notifications.md)."""

from __future__ import annotations

import typer

from minga.cli import config, errors, render
from minga.cli.call import Call
from minga.cli.options import with_call

app = typer.Typer(help="Your own credential.", no_args_is_help=True)


@app.command("rotate")
@with_call()
def rotate(call: Call) -> None:
    """Get a new token and revoke the one you call with, at once. If that token is the
    one saved by `minga login`, the config file gets the new one."""
    conn = call.connection()
    with call.client(conn) as client, errors.explain():
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

    call.show(data, human)


@app.command("list")
@with_call()
def list_tokens(call: Call) -> None:
    """Your own tokens: when each was made, when it expires, whether it is revoked."""
    with call.client() as client, errors.explain():
        me = client.whoami()
        items = [render.token_to_dict(t) for t in client.list_tokens(me.name)]
    call.show(items, lambda: render.tokens_table(items))


@app.command("webhook-secret")
@with_call()
def webhook_secret(call: Call) -> None:
    """Create (or replace) the secret your job webhooks (--notify) are signed with; shown
    only this once. Check X-Minga-Signature with it: see docs/notifications.md."""
    with call.client() as client, errors.explain():
        secret, replaced = client.create_webhook_secret()
    data = {"secret": secret, "replaced": replaced}

    def human() -> None:
        typer.echo(
            ("your previous webhook secret no longer signs anything; " if replaced else "")
            + "your webhook secret follows, shown only once: keep it where your receiver can read it",
            err=True,
        )
        typer.echo(secret)

    call.show(data, human)
