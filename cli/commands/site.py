"""`minga site ...`: list the federation's sites; join this cluster as a site."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from minga.cli import errors, render
from minga.cli.call import Call, read_ca
from minga.cli.extras import needs
from minga.cli.options import with_call

app = typer.Typer(help="Sites: the Ray clusters institutions contribute.", no_args_is_help=True)

CREDENTIAL_ENV = "MINGA_SITE_CREDENTIAL"

CredentialOpt = Annotated[
    Path | None,
    typer.Option(
        "--credential",
        help="Site credential file (env MINGA_SITE_CREDENTIAL; default in the config dir).",
        show_default=False,
    ),
]


def credential_path(flag: Path | None) -> Path:
    """--credential, else $MINGA_SITE_CREDENTIAL, else the agent's default location."""
    if flag:
        return flag.expanduser()
    if os.environ.get(CREDENTIAL_ENV):
        return Path(os.environ[CREDENTIAL_ENV]).expanduser()
    from minga.agent.credentials import default_credential_path  # lazy: agent/ may pull in heavy deps

    return default_credential_path()


@app.command("list")
@with_call()
def list_sites(call: Call) -> None:
    """List sites: state, connection, and GPUs in use/total per model."""
    with call.client() as c:
        items = [render.site_to_dict(s) for s in c.list_sites()]
    call.show(items, lambda: render.sites_table(items))


@app.command("join")
@with_call(connect=False)
def join(
    call: Call,
    broker: Annotated[str, typer.Option("--broker", help="Broker address HOST:PORT.")],
    token: Annotated[str, typer.Option("--token", help="One-time join token from `minga admin site-token create`.")],
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate (PEM) of the broker's TLS.")] = None,
    credential: CredentialOpt = None,
) -> None:
    """Exchange a one-time join token for this site's credential.

    The site's key is made here and never leaves this machine: the join sends a CSR,
    and a broker with a federation CA answers with a 30-day client certificate, which
    the agent renews by itself. Key and certificate go next to the credential (0600)."""
    with needs(call.command_path, "site"):
        from minga.agent.credentials import join_site, save_credential

    ca_file = ca.expanduser().resolve() if ca else None
    read_ca(ca_file)  # fail early, with one line, on a missing CA file
    path = credential_path(credential)
    errors.note_connection(broker, has_token=True, has_ca=ca_file is not None)
    with errors.explain(
        unauthenticated="the broker rejected the join token: it is used, expired or mistyped; "
        "ask the admin for a new one (minga admin site-token create)",
        permission_denied="the broker rejected the join token: ask the admin for a new one",
    ):
        cred = join_site(broker, token, str(ca_file) if ca_file else None, path.with_suffix(".pem"))
    save_credential(path, cred)
    data = {
        "site": cred.site,
        "institution": cred.institution,
        "country": cred.country,
        "broker": cred.broker,
        "credential_file": str(path),
        "certificate_file": cred.certificate_file,
    }
    where = f" --credential {path}" if credential else ""
    call.show(
        data,
        lambda: typer.echo(
            f"joined as site {cred.site} of {cred.institution} ({cred.country}); credential saved to {path}\n"
            + (
                f"its key and certificate are in {cred.certificate_file}; the agent connects to {cred.broker} "
                "with mutual TLS and renews the certificate by itself\n"
                if cred.certificate_file
                else ""
            )
            + f"start the agent with: minga agent run --ray-address http://RAY_HEAD:8265{where}"
            f"   (or --ray-local --gpus N{where})"
        ),
    )
