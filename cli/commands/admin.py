"""`minga admin ...`: what federation operators do (institutions, users, sites)."""

from __future__ import annotations

import enum
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from minga.cli import errors, render
from minga.cli.client import BrokerClient
from minga.cli.commands import lending, shares
from minga.cli.options import BrokerOpt, CaOpt, OutputOpt, TokenOpt, client, connection, open_client
from minga.cli.parsing import parse_country, parse_duration, parse_env
from minga.cli.render import Output
from minga.v1 import admin_pb2, common_pb2

app = typer.Typer(help="Federation administration: institutions, users, site tokens, cordons.", no_args_is_help=True)
institution_app = typer.Typer(help="Institutions that pool GPUs.", no_args_is_help=True)
user_app = typer.Typer(help="Researchers and admins.", no_args_is_help=True)
site_token_app = typer.Typer(help="One-time tokens that let a site join.", no_args_is_help=True)
token_app = typer.Typer(help="Credentials: who holds which, and until when (never the secrets).", no_args_is_help=True)
site_app = typer.Typer(help="Take a site out of scheduling and back.", no_args_is_help=True)
DRAIN_POLL_SECONDS = 2.0
app.add_typer(institution_app, name="institution")
app.add_typer(user_app, name="user")
app.add_typer(site_token_app, name="site-token")
app.add_typer(token_app, name="token")
app.add_typer(site_app, name="site")
site_app.add_typer(lending.policy_app, name="policy")
app.add_typer(shares.policy_app, name="policy")
app.add_typer(shares.project_app, name="project")
app.add_typer(shares.weight_app, name="weight")
app.add_typer(shares.guarantee_app, name="guarantee")
app.add_typer(shares.limits_app, name="limits")


class RoleChoice(str, enum.Enum):
    researcher = "researcher"
    institution_admin = "institution-admin"
    admin = "admin"


_ROLES = {
    RoleChoice.researcher: common_pb2.ROLE_RESEARCHER,
    RoleChoice.admin: common_pb2.ROLE_ADMIN,
    RoleChoice.institution_admin: common_pb2.ROLE_INSTITUTION_ADMIN,
}


def _expires(value: str | None) -> int:
    """`--expires 90d` as seconds; None: the broker's default (90 days)."""
    if value is None:
        return 0
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires") from exc
    if seconds <= 0:
        raise typer.BadParameter("must be a positive duration, e.g. 30d", param_hint="--expires")
    return seconds


def _country(value: str, flag: str = "--country") -> str:
    try:
        return parse_country(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from exc


@institution_app.command("add")
def institution_add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short id, e.g. uchile.")],
    name: Annotated[str, typer.Option("--name", help="Full name, e.g. 'Universidad de Chile'.")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2 code, e.g. CL.")],
    weight: Annotated[float, typer.Option("--weight", min=0.0, help="Fair-share weight.")] = 1.0,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Register an institution."""
    cc = _country(country)
    with client(ctx, broker, token, ca) as c:
        inst = render.institution_to_dict(c.add_institution(slug, name, cc, weight))
    render.show(
        output, inst, lambda: typer.echo(f"institution {inst['slug']} ({inst['name']}, {inst['country']}) added")
    )


@institution_app.command("list")
def institution_list(
    ctx: typer.Context,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List institutions."""
    with client(ctx, broker, token, ca) as c:
        items = [render.institution_to_dict(i) for i in c.list_institutions()]
    render.show(output, items, lambda: render.institutions_table(items))


@user_app.command("add")
def user_add(
    ctx: typer.Context,
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
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a user and print their token. The token is shown only this once.
    An institution-admin may add researchers and institution-admins of its own institution."""
    ttl = _expires(expires)
    with client(ctx, broker, token, ca) as c, errors.explain(not_found=f"no institution {institution}"):
        added = c.add_user(name, institution, _ROLES[role], ttl)
    data = {**render.user_to_dict(added.user), "token": added.token, "expires_at": render.iso_time(added.expires_at)}

    def human() -> None:
        typer.echo(
            f"user {data['name']} ({data['role']}, {data['institution']}) added, token valid until "
            f"{data['expires_at']}; the token follows, shown only once:",
            err=True,
        )
        typer.echo(added.token)

    render.show(output, data, human)


@user_app.command("list")
def user_list(
    ctx: typer.Context,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List users (never their tokens)."""
    with client(ctx, broker, token, ca) as c:
        items = [render.user_to_dict(u) for u in c.list_users()]
    render.show(output, items, lambda: render.users_table(items))


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's (or site's) tokens.")] = None,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List tokens: owner, kind, created, expires, last used, revoked. Never a secret.
    An admin sees every token; an institution-admin its institution's."""
    with client(ctx, broker, token, ca) as c:
        items = [render.token_to_dict(t) for t in c.list_tokens(user or "")]
    render.show(output, items, lambda: render.tokens_table(items))


@user_app.command("revoke")
def user_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Revoke every token of a user, at once."""
    _revoke(ctx, "user", name, broker, token, ca, output)


def _revoke(
    ctx: typer.Context, kind: str, name: str, broker: str | None, token: str | None, ca: Path | None, output: Output
) -> None:
    with client(ctx, broker, token, ca) as c, errors.explain(not_found=f"no {kind} {name}"):
        revoked = c.revoke(kind, name)
    render.show(
        output, {kind: name, "revoked": revoked}, lambda: typer.echo(f"{kind} {name}: {revoked} credential(s) revoked")
    )


@site_token_app.command("create")
def site_token_create(
    ctx: typer.Context,
    institution: Annotated[str, typer.Option("--institution", help="Slug of the institution that owns the site.")],
    site: Annotated[str, typer.Option("--site", help="Name of the site, e.g. uchile-dcc.")],
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="How long the token stays valid: 90s, 30m, 24h, 7d.", show_default="24h"),
    ] = None,
    country: Annotated[
        str | None, typer.Option("--country", help="Site country if not the institution's.", show_default=False)
    ] = None,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a one-time join token for a site; give it to the site's operator."""
    try:
        ttl_seconds = parse_duration(ttl) if ttl else 0
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ttl") from exc
    if ttl and ttl_seconds <= 0:
        raise typer.BadParameter("must be longer than 0s", param_hint="--ttl")
    cc = _country(country) if country else ""
    conn = connection(ctx, broker, token, ca)
    with open_client(conn) as c, errors.explain(not_found=f"no institution {institution}"):
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

    render.show(output, data, human)


def _set_cordon(
    ctx: typer.Context, name: str, cordon: bool, broker: str | None, token: str | None, ca: Path | None, output: Output
) -> None:
    with client(ctx, broker, token, ca) as c, errors.explain(not_found=f"no site {name}"):
        site = render.site_to_dict(c.cordon_site(name) if cordon else c.uncordon_site(name))
    render.show(output, site, lambda: typer.echo(f"site {site['name']} is now {site['state']}"))


@site_app.command("cordon")
def site_cordon(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Stop placing new jobs on a site; its running jobs keep running."""
    _set_cordon(ctx, name, True, broker, token, ca, output)


@site_app.command("drain")
def site_drain(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the site's runs have ended.")] = True,
    timeout: Annotated[str, typer.Option("--timeout", help="Give up waiting after this long (e.g. 30m, 2h).")] = "24h",
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Take no new jobs on a site and wait for its running jobs to end (like `scontrol ... DRAIN`).

    Exits 0 once the site holds no GPUs (it stays DRAINING until `uncordon`), or 6 if
    the timeout comes first; the jobs keep running either way."""
    try:
        limit = parse_duration(timeout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timeout") from exc
    with client(ctx, broker, token, ca) as c, errors.explain(not_found=f"no site {name}"):
        site = c.drain_site(name)
        if wait:
            site = _wait_drained(c, name, limit)
    data = render.site_to_dict(site)
    data["drained"] = not dict(site.gpus_in_use)

    def human() -> None:
        held = sum(site.gpus_in_use.values())
        typer.echo(
            f"site {name} is drained: no runs left"
            if data["drained"]
            else f"site {name} is {data['state']}: {held} GPU(s) still in use"
        )

    render.show(output, data, human)
    if wait and not data["drained"]:
        raise typer.Exit(errors.EXIT_TIMEOUT)


def _wait_drained(c: BrokerClient, name: str, limit: float) -> admin_pb2.Site:
    """Poll until the site holds no GPUs or `limit` seconds pass; the last view of it."""
    deadline = time.monotonic() + limit
    while True:
        site = next((s for s in c.list_sites() if s.name == name), None)
        if site is None:
            raise errors.CliError(f"site {name} disappeared", errors.EXIT_NOT_FOUND)
        if not dict(site.gpus_in_use) or time.monotonic() >= deadline:
            return site
        time.sleep(min(DRAIN_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


@site_app.command("revoke")
def site_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Cut a site off: its credential stops working and its open stream ends now. Its runs
    are requeued when its lease runs out. It needs a new join token to come back."""
    _revoke(ctx, "site", name, broker, token, ca, output)


@site_app.command("uncordon")
def site_uncordon(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Let the scheduler place jobs on a cordoned or draining site again."""
    _set_cordon(ctx, name, False, broker, token, ca, output)


@site_app.command("label")
def site_label(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    labels: Annotated[
        list[str] | None,
        typer.Argument(metavar="KEY=VALUE...", help="The site's labels; none clears them.", show_default=False),
    ] = None,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Replace a site's labels; jobs may require them with `job submit --label`."""
    try:
        parsed = parse_env(labels or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="KEY=VALUE") from exc
    with client(ctx, broker, token, ca) as c:
        site = render.site_to_dict(c.set_site_labels(name, parsed))
    shown = ", ".join(f"{k}={v}" for k, v in site["labels"].items()) or "none"
    render.show(output, site, lambda: typer.echo(f"site {site['name']} labels: {shown}"))


@app.command("audit")
def audit(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option("--since", help="Only the last DURATION (e.g. 1h, 7d).", show_default="everything")
    ] = None,
    who: Annotated[
        str | None, typer.Option("--who", help="Only calls by this user or site.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, the most recent.")] = 1000,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The audit log: every state-changing call, who made it, from where, and how it ended."""
    try:
        window = parse_duration(since) if since else 0
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    if not 1 <= limit <= 10_000:
        raise typer.BadParameter(f"{limit} must be between 1 and 10000", param_hint="--limit")
    with client(ctx, broker, token, ca) as c:
        entries = [
            render.audit_to_dict(e) for e in c.list_audit(time.time() - window if window else 0.0, who or "", limit)
        ]
    render.show(output, entries, lambda: render.audit_table(entries))
