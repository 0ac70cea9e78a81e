"""`minga admin user add|list|revoke`: researchers and admins, and their tokens."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from minga.cli import errors, render
from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_duration

app = typer.Typer(help="Researchers and admins.", no_args_is_help=True)


class RoleChoice(enum.StrEnum):
    researcher = "researcher"
    institution_admin = "institution-admin"
    admin = "admin"


def _expires(value: str | None) -> int:
    """`--expires 90d` as seconds; None: the broker's default (90 days)."""
    if value is None:
        return 0
    seconds = flag_value("--expires", parse_duration, value)
    if seconds <= 0:
        raise typer.BadParameter("must be a positive duration, e.g. 30d", param_hint="--expires")
    return seconds


@app.command("add")
@with_call()
def add(
    call: Call,
    name: Annotated[str, typer.Argument(help="User name, e.g. ana.")],
    institution: Annotated[str, typer.Option("--institution", help="Slug of the user's institution.")],
    role: Annotated[
        RoleChoice,
        typer.Option(
            "--role",
            help="researcher; institution-admin (its institution's users, projects and sites); "
            "admin (the whole federation).",
        ),
    ] = RoleChoice.researcher,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="The token's lifetime, e.g. 30d or 12h (default 90d, at most 5 years)."),
    ] = None,
) -> None:
    """Add a user and print their token. The token is shown only this once.
    An institution-admin may add researchers and institution-admins of its own institution."""
    from minga.common.domain import Role

    ttl = _expires(expires)
    with call.client() as c, errors.explain(not_found=f"no institution {institution}"):
        added = c.add_user(name, institution, Role(role.value), ttl)
    data = {**render.user_to_dict(added.user), "token": added.token, "expires_at": render.iso_time(added.expires_at)}

    def human() -> None:
        typer.echo(
            f"user {data['name']} ({data['role']}, {data['institution']}) added, token valid until "
            f"{data['expires_at']}; the token follows, shown only once:",
            err=True,
        )
        typer.echo(added.token)

    call.show(data, human)


@app.command("list")
@with_call()
def list_users(call: Call) -> None:
    """List users (never their tokens)."""
    with call.client() as c:
        items = [render.user_to_dict(u) for u in c.list_users()]
    call.show(items, lambda: render.users_table(items))


@app.command("revoke")
@with_call()
def revoke(
    call: Call,
    name: Annotated[str, typer.Argument(help="User name.")],
) -> None:
    """Revoke every token of a user, at once."""
    revoke_credentials(call, "user", name)


def revoke_credentials(call: Call, kind: str, name: str) -> None:
    """Revoke every credential of a user or a site (`admin site revoke` too)."""
    with call.client() as c, errors.explain(not_found=f"no {kind} {name}"):
        revoked = c.revoke(kind, name)
    call.show({kind: name, "revoked": revoked}, lambda: typer.echo(f"{kind} {name}: {revoked} credential(s) revoked"))
