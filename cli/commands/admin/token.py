"""`minga admin token list`: who holds which credential, and until when (never the secrets)."""

from __future__ import annotations

from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import with_call

app = typer.Typer(help="Credentials: who holds which, and until when (never the secrets).", no_args_is_help=True)


@app.command("list")
@with_call()
def list_tokens(
    call: Call,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's (or site's) tokens.")] = None,
) -> None:
    """List tokens: owner, kind, created, expires, last used, revoked. Never a secret.
    An admin sees every token; an institution-admin its institution's."""
    with call.client() as c:
        items = [render.token_to_dict(t) for t in c.list_tokens(user or "")]
    call.show(items, lambda: render.tokens_table(items))
