"""`minga admin site policy set|show|clear`: a site owner's lending policy.

`set` replaces the whole policy, so `show` prints exactly what is enforced; flags are
checked with the broker's own parsers before anything is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_country, parse_duration

if TYPE_CHECKING:
    from minga.common.lending import LendingPolicy, SiteLending

app = typer.Typer(
    help="A site owner's lending policy: who may borrow its GPUs, how many, how long, "
    "when, and what may reach its Ray cluster.",
    no_args_is_help=True,
)

SiteArg = Annotated[str, typer.Argument(help="Site name, e.g. ufpa-belem.")]
Many = list[str] | None


def _each(flag: str, values: Many, parse: Any) -> list[Any]:
    return [flag_value(flag, parse, value) for value in values or []]


def _policy(
    *,
    allow_country: Many,
    deny_country: Many,
    allow_institution: Many,
    deny_institution: Many,
    max_lent: int | None,
    guest_walltime: str | None,
    lend_window: Many,
    closed_window: Many,
    timezone: str | None,
    no_env: bool,
    env_allow: Many,
    no_pip: bool,
    pip_allow: Many,
) -> LendingPolicy:
    """The flags as a checked policy; a bad one is a BadParameter naming its flag."""
    from minga.common.lending import LendingPolicy, check_policy, check_timezone, parse_window

    if no_env and env_allow:
        raise typer.BadParameter("give either --no-env or --env-allow, not both", param_hint="--no-env")
    if no_pip and pip_allow:
        raise typer.BadParameter("give either --no-pip or --pip-allow, not both", param_hint="--no-pip")
    windows = _each("--lend-window", lend_window, parse_window), _each("--closed-window", closed_window, parse_window)
    if (windows[0] or windows[1]) and not timezone:
        raise typer.BadParameter(
            "time windows need the site's IANA time zone, e.g. --timezone America/Belem", param_hint="--timezone"
        )
    walltime = _each("--guest-walltime", [guest_walltime] if guest_walltime else [], parse_duration)
    if walltime and walltime[0] <= 0:
        raise typer.BadParameter("must be longer than 0s", param_hint="--guest-walltime")
    policy = LendingPolicy(
        allow_countries=tuple(_each("--allow-country", allow_country, parse_country)),
        deny_countries=tuple(_each("--deny-country", deny_country, parse_country)),
        allow_institutions=_checked("--allow-institution", "allow_institutions", allow_institution),
        deny_institutions=_checked("--deny-institution", "deny_institutions", deny_institution),
        max_lent_gpus=max_lent,
        guest_max_walltime_seconds=walltime[0] if walltime else 0,
        timezone=_each("--timezone", [timezone], check_timezone)[0] if timezone else "",
        lend_windows=tuple(windows[0]),
        closed_windows=tuple(windows[1]),
        no_env=no_env,
        env_allow=_checked("--env-allow", "env_allow", env_allow),
        no_pip=no_pip,
        pip_allow=_checked("--pip-allow", "pip_allow", pip_allow),
    )
    try:
        return check_policy(policy)
    except ValueError as exc:  # not expected once each flag passed on its own
        raise typer.BadParameter(str(exc), param_hint="policy") from exc


def _checked(flag: str, field: str, values: Many) -> tuple[str, ...]:
    """One list flag, checked (and normalized) by the broker's own rules."""
    from minga.common.lending import LendingPolicy, check_policy

    try:
        given: dict[str, Any] = {field: tuple(values or ())}
        checked: tuple[str, ...] = getattr(check_policy(LendingPolicy(**given)), field)
        return checked
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from exc


def lending_to_dict(r: SiteLending) -> dict[str, Any]:
    p = r.policy
    policy = (
        None
        if p is None
        else {
            "allow_countries": list(p.allow_countries),
            "deny_countries": list(p.deny_countries),
            "allow_institutions": list(p.allow_institutions),
            "deny_institutions": list(p.deny_institutions),
            "max_lent_gpus": p.max_lent_gpus,
            "guest_max_walltime_seconds": p.guest_max_walltime_seconds or None,
            "timezone": p.timezone or None,
            "lend_windows": [str(w) for w in p.lend_windows],
            "closed_windows": [str(w) for w in p.closed_windows],
            "no_env": p.no_env,
            "env_allow": list(p.env_allow),
            "no_pip": p.no_pip,
            "pip_allow": list(p.pip_allow),
        }
    )
    return {"site": r.site, "institution": r.institution, "policy": policy, "open_now": r.open_now}


def lending_lines(d: dict[str, Any]) -> list[str]:
    """The policy in words, one rule per line."""
    from minga.common.lending import format_duration

    p = d["policy"]
    head = f"site {d['site']} (owner {d['institution']})"
    if p is None:
        return [f"{head}: no lending policy; lends to any institution, at any time, and takes any environment"]
    lines = [f"{head}; guests are jobs of other institutions"]
    if p["allow_countries"] or p["allow_institutions"]:
        allowed = [f"institutions in {', '.join(p['allow_countries'])}"] if p["allow_countries"] else []
        allowed += [", ".join(p["allow_institutions"])] if p["allow_institutions"] else []
        lines.append(f"  lends to:        only {' and '.join(allowed)}")
    for key, label in (("deny_countries", "never to (countries)"), ("deny_institutions", "never to")):
        if p[key]:
            lines.append(f"  {label + ':':16} {', '.join(p[key])}")
    if p["max_lent_gpus"] is not None:
        lines.append(f"  lent at once:    at most {p['max_lent_gpus']} GPUs")
    if p["guest_max_walltime_seconds"]:
        lines.append(f"  guest walltime:  at most {format_duration(p['guest_max_walltime_seconds'])} (declared)")
    if p["lend_windows"]:
        lines.append(f"  lends only:      during {', '.join(p['lend_windows'])} {p['timezone']}")
    if p["closed_windows"]:
        lines.append(f"  never lends:     during {', '.join(p['closed_windows'])} {p['timezone']}")
    if p["lend_windows"] or p["closed_windows"]:
        lines.append(f"  now:             {'open to guests' if d['open_now'] else 'closed to guests'}")
    env = "none" if p["no_env"] else (", ".join(p["env_allow"]) if p["env_allow"] else None)
    pip = "none" if p["no_pip"] else (", ".join(p["pip_allow"]) if p["pip_allow"] else None)
    if env:
        lines.append(f"  env vars:        {env} (every job)")
    if pip:
        lines.append(f"  pip packages:    {pip} (every job)")
    return lines


def _show(call: Call, answer: SiteLending) -> None:
    data = lending_to_dict(answer)
    call.show(data, lambda: typer.echo("\n".join(lending_lines(data))))


@app.command("set")
@with_call()
def set_policy(
    call: Call,
    site: SiteArg,
    allow_country: Annotated[
        Many,
        typer.Option(
            "--allow-country",
            help="Lend only to institutions of this country (repeatable), e.g. CL.",
            show_default=False,
        ),
    ] = None,
    deny_country: Annotated[
        Many,
        typer.Option(
            "--deny-country", help="Never lend to institutions of this country (repeatable).", show_default=False
        ),
    ] = None,
    allow_institution: Annotated[
        Many,
        typer.Option(
            "--allow-institution",
            help="Lend only to this institution (repeatable; with --allow-country, either admits).",
            show_default=False,
        ),
    ] = None,
    deny_institution: Annotated[
        Many,
        typer.Option(
            "--deny-institution", help="Never lend to this institution (repeatable; deny wins).", show_default=False
        ),
    ] = None,
    max_lent: Annotated[
        int | None,
        typer.Option("--max-lent", min=0, help="GPUs all guests together may hold at once.", show_default=False),
    ] = None,
    guest_walltime: Annotated[
        str | None,
        typer.Option(
            "--guest-walltime", help="Guests must declare a walltime of at most this, e.g. 4h.", show_default=False
        ),
    ] = None,
    lend_window: Annotated[
        Many,
        typer.Option(
            "--lend-window",
            help="Lend only during these local times "
            "(repeatable), e.g. 'Mon-Fri 20:00-08:00' or 'Sat-Sun 00:00-24:00'.",
            show_default=False,
        ),
    ] = None,
    closed_window: Annotated[
        Many,
        typer.Option(
            "--closed-window",
            help="Never lend during these local times "
            "(repeatable), e.g. 'Mon-Fri 08:00-20:00'; guests' runs are "
            "preempted when one starts.",
            show_default=False,
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", help="The site's IANA time zone for the windows, e.g. America/Belem.", show_default=False
        ),
    ] = None,
    no_env: Annotated[
        bool,
        typer.Option("--no-env", help="Refuse jobs that set any environment variable (every job, the owner's too)."),
    ] = False,
    env_allow: Annotated[
        Many,
        typer.Option(
            "--env-allow",
            help="Allow only these environment variable names (repeatable; every job).",
            show_default=False,
        ),
    ] = None,
    no_pip: Annotated[
        bool, typer.Option("--no-pip", help="Refuse jobs that install pip packages (every job).")
    ] = False,
    pip_allow: Annotated[
        Many,
        typer.Option(
            "--pip-allow",
            help="Allow only these pip distributions (repeatable; every job), e.g. torch.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replace the site's lending policy with exactly what these flags say."""
    policy = _policy(
        allow_country=allow_country,
        deny_country=deny_country,
        allow_institution=allow_institution,
        deny_institution=deny_institution,
        max_lent=max_lent,
        guest_walltime=guest_walltime,
        lend_window=lend_window,
        closed_window=closed_window,
        timezone=timezone,
        no_env=no_env,
        env_allow=env_allow,
        no_pip=no_pip,
        pip_allow=pip_allow,
    )
    with call.client() as c:
        answer = c.set_lending_policy(site, policy)
    _show(call, answer)


@app.command("show")
@with_call()
def show(
    call: Call,
    site: SiteArg,
) -> None:
    """Show the site's lending policy, and whether guests may start there now."""
    with call.client() as c:
        answer = c.get_lending_policy(site)
    _show(call, answer)


@app.command("clear")
@with_call()
def clear(
    call: Call,
    site: SiteArg,
) -> None:
    """Remove the site's lending policy: it lends to anyone, at any time, and takes any environment."""
    with call.client() as c:
        answer = c.set_lending_policy(site, None)
    _show(call, answer)
