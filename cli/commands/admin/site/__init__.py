"""`minga admin site cordon|drain|revoke|uncordon|label`, and `policy` (site/policy.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from minga.cli import errors, render
from minga.cli.call import Call
from minga.cli.commands.admin.site import policy
from minga.cli.commands.admin.user import revoke_credentials
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_duration, parse_env

if TYPE_CHECKING:
    from minga.cli.client import BrokerClient
    from minga.common.site_view import SiteView

app = typer.Typer(help="Take a site out of scheduling and back.", no_args_is_help=True)
app.add_typer(policy.app, name="policy")
DRAIN_POLL_SECONDS = 2.0

NameArg = Annotated[str, typer.Argument(help="Site name.")]


def _set_cordon(call: Call, name: str, cordon: bool) -> None:
    with call.client() as c, errors.explain(not_found=f"no site {name}"):
        site = render.site_to_dict(c.cordon_site(name) if cordon else c.uncordon_site(name))
    call.show(site, lambda: typer.echo(f"site {site['name']} is now {site['state']}"))


@app.command("cordon")
@with_call()
def cordon(call: Call, name: NameArg) -> None:
    """Stop placing new jobs on a site; its running jobs keep running."""
    _set_cordon(call, name, True)


@app.command("drain")
@with_call()
def drain(
    call: Call,
    name: NameArg,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the site's runs have ended.")] = True,
    timeout: Annotated[str, typer.Option("--timeout", help="Give up waiting after this long (e.g. 30m, 2h).")] = "24h",
) -> None:
    """Take no new jobs on a site and wait for its running jobs to end (like `scontrol ... DRAIN`).

    Exits 0 once the site holds no GPUs (it stays DRAINING until `uncordon`), or 6 if
    the timeout comes first; the jobs keep running either way."""
    limit = flag_value("--timeout", parse_duration, timeout)
    with call.client() as c, errors.explain(not_found=f"no site {name}"):
        site = c.drain_site(name)
        if wait:
            site = _wait_drained(c, name, limit)
    data = render.site_to_dict(site)
    data["drained"] = not site.gpus_in_use

    def human() -> None:
        held = site.gpus_held
        typer.echo(
            f"site {name} is drained: no runs left"
            if data["drained"]
            else f"site {name} is {data['state']}: {held} GPU(s) still in use"
        )

    call.show(data, human)
    if wait and not data["drained"]:
        raise typer.Exit(errors.EXIT_TIMEOUT)


def _wait_drained(c: BrokerClient, name: str, limit: float) -> SiteView:
    """Poll until the site holds no GPUs or `limit` seconds pass; the last view of it."""
    deadline = time.monotonic() + limit
    while True:
        site = next((s for s in c.list_sites() if s.site.name == name), None)
        if site is None:
            raise errors.CliError(f"site {name} disappeared", errors.EXIT_NOT_FOUND)
        if not site.gpus_in_use or time.monotonic() >= deadline:
            return site
        time.sleep(min(DRAIN_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


@app.command("revoke")
@with_call()
def revoke(call: Call, name: NameArg) -> None:
    """Cut a site off: its credential stops working and its open stream ends now. Its runs
    are requeued when its lease runs out. It needs a new join token to come back."""
    revoke_credentials(call, "site", name)


@app.command("uncordon")
@with_call()
def uncordon(call: Call, name: NameArg) -> None:
    """Let the scheduler place jobs on a cordoned or draining site again."""
    _set_cordon(call, name, False)


@app.command("label")
@with_call()
def label(
    call: Call,
    name: NameArg,
    labels: Annotated[
        list[str] | None,
        typer.Argument(metavar="KEY=VALUE...", help="The site's labels; none clears them.", show_default=False),
    ] = None,
) -> None:
    """Replace a site's labels; jobs may require them with `job submit --label`."""
    parsed = flag_value("KEY=VALUE", parse_env, labels or [])
    with call.client() as c:
        site = render.site_to_dict(c.set_site_labels(name, parsed))
    shown = ", ".join(f"{k}={v}" for k, v in site["labels"].items()) or "none"
    call.show(site, lambda: typer.echo(f"site {site['name']} labels: {shown}"))
