"""`minga admin ...`: what federation operators do; each subgroup is a module here."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.commands.admin import (
    carbon,
    guarantee,
    institution,
    limits,
    policy,
    project,
    site,
    site_token,
    token,
    user,
    weight,
)
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_duration

app = typer.Typer(help="Federation administration: institutions, users, site tokens, cordons.", no_args_is_help=True)
app.add_typer(institution.app, name="institution")
app.add_typer(user.app, name="user")
app.add_typer(site_token.app, name="site-token")
app.add_typer(token.app, name="token")
app.add_typer(site.app, name="site")
app.add_typer(policy.app, name="policy")
app.add_typer(project.app, name="project")
app.add_typer(weight.app, name="weight")
app.add_typer(guarantee.app, name="guarantee")
app.add_typer(limits.app, name="limits")
app.add_typer(carbon.app, name="carbon")


@app.command("audit")
@with_call()
def audit(
    call: Call,
    since: Annotated[
        str | None, typer.Option("--since", help="Only the last DURATION (e.g. 1h, 7d).", show_default="everything")
    ] = None,
    who: Annotated[
        str | None, typer.Option("--who", help="Only calls by this user or site.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, the most recent.")] = 1000,
) -> None:
    """The audit log: every state-changing call, who made it, from where, and how it ended."""
    window = flag_value("--since", parse_duration, since) if since else 0
    if not 1 <= limit <= 10_000:
        raise typer.BadParameter(f"{limit} must be between 1 and 10000", param_hint="--limit")
    with call.client() as c:
        entries = [
            render.audit_to_dict(e) for e in c.list_audit(time.time() - window if window else 0.0, who or "", limit)
        ]
    call.show(entries, lambda: render.audit_table(entries))
