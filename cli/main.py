"""The `minga` command tree (console script `minga = "minga.cli.main:app"`).

Commands parse flags, call the BrokerClient or the broker/agent/simulator (imported
inside the command, so `minga job list` never loads them), and render the answer;
failures go through cli.errors: one line, an exit code.
"""

from __future__ import annotations

import typer

from minga.cli.commands import admin, agent, broker, job, login, quota, sim, site, token, up, usage
from minga.cli.errors import MingaGroup
from minga.cli.options import BrokerOpt, CaOpt, TokenOpt, hide_flag_types

hide_flag_types()

app = typer.Typer(
    name="minga",
    cls=MingaGroup,
    help="minga: pool GPUs across institutions; submit Ray jobs to the federation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    broker_: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
) -> None:
    """Connection flags given before the command apply to it (its own flags win)."""
    ctx.obj = {"broker": broker_, "token": token, "ca": ca}


app.command("login")(login.login)
app.command("up")(up.up)
app.add_typer(admin.app, name="admin")
app.add_typer(site.app, name="site")
app.add_typer(agent.app, name="agent")
app.add_typer(broker.app, name="broker")
app.add_typer(job.app, name="job")
app.add_typer(quota.app, name="quota")
app.add_typer(usage.app, name="usage")
app.add_typer(sim.app, name="sim")
app.add_typer(token.app, name="token")

__all__ = ["app"]
