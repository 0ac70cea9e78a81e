"""`minga broker init`: the federation's CA and the broker's certificate;
`minga broker serve`: run the federation's broker in the foreground;
`minga broker status`: which broker of a standby pair leads."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minga.cli import errors, render
from minga.cli.call import Call
from minga.cli.extras import needs
from minga.cli.lifecycle import configure_logging, stop_signals, wait_until
from minga.cli.options import check_listen, with_call
from minga.cli.parsing import flag_value, parse_duration, parse_size
from minga.cli.render import Output

if TYPE_CHECKING:
    import grpc

app = typer.Typer(help="Run the broker (federation operators).", no_args_is_help=True)

PkiDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--pki-dir",
        help="The federation CA and the broker's certificate (made by `minga broker init`).",
        show_default="<data dir>/pki",
    ),
]


@app.command("init")
@with_call(connect=False)
def init(
    call: Call,
    san: Annotated[
        list[str],
        typer.Option(
            "--san",
            help="A host name or IP address clients and sites use to reach the broker (repeat for each).",
            show_default=False,
        ),
    ],
    pki_dir: PkiDirOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing CA (every site must join again).")
    ] = False,
) -> None:
    """Create the federation's CA and the broker's TLS certificate, readable only by you.

    `minga broker serve` then uses them by default: TLS for users, and mutual TLS on
    the site port, where sites connect with the client certificates they get at join."""
    from minga.common.domain import MingaError
    from minga.common.paths import data_dir

    with needs(call.command_path, "broker"):
        from minga.common.pki import CA_CERT, init_broker_pki

    directory = (pki_dir or data_dir() / "pki").expanduser()
    try:
        init_broker_pki(directory, san, force)
    except MingaError as exc:
        raise errors.usage_error(str(exc)) from exc
    except OSError as exc:
        raise errors.CliError(f"cannot write {directory}: {exc.strerror}") from exc
    ca_file = directory / CA_CERT
    data = {"pki_dir": str(directory), "ca_file": str(ca_file), "sans": san}
    call.show(
        data,
        lambda: typer.echo(
            f"created the federation CA and the broker certificate for {', '.join(san)} in {directory} (mode 0700)\n"
            f"give users and sites the CA certificate: {ca_file}\n"
            f"  e.g. minga site join --broker HOST:PORT --token JOIN_TOKEN --ca {shlex.quote(str(ca_file.resolve()))}"
        ),
    )


@app.command("serve")
@with_call(connect=False)
def serve(
    call: Call,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to listen on (port 0: any free port).")
    ] = "127.0.0.1:50551",
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="sqlite:///path or postgresql://...; default: a SQLite file in the data dir (env MINGA_DATA_DIR).",
            show_default=False,
        ),
    ] = "",
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            "--admin-token-file",
            help="Where the bootstrap admin token goes.",
            show_default="<data dir>/admin-token",
        ),
    ] = None,
    token_key_file: Annotated[
        Path | None,
        typer.Option(
            "--token-key-file",
            help="The secret key token hashes are made with (created on first start, 0600); "
            "every broker sharing a database needs the same one.",
            show_default="next to the admin token file",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Server certificate (PEM).", show_default=False)
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="Server private key (PEM).", show_default=False)
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plaintext on a non-loopback address.")] = False,
    lease_ttl: Annotated[
        str,
        typer.Option(
            "--lease-ttl",
            help="A site silent this long is LOST and its jobs are requeued (agents heartbeat every 5 s).",
        ),
    ] = "30s",
    advertise: Annotated[
        str,
        typer.Option(
            "--advertise",
            help="HOST:PORT at which clients reach this broker, told to them by a standby.",
            show_default="the listen address",
        ),
    ] = "",
    pki_dir: PkiDirOpt = None,
    site_listen: Annotated[
        str,
        typer.Option(
            "--site-listen",
            help="HOST:PORT of the site port (mutual TLS; only with a federation CA).",
            show_default="listen port + 1",
        ),
    ] = "",
    site_advertise: Annotated[
        str,
        typer.Option(
            "--site-advertise",
            help="Where sites reach the site port; a list 'h1:p1,h2:p2' for a leader and its standbys.",
            show_default="the site listen address",
        ),
    ] = "",
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit",
            help="Calls per second each token, site or "
            "address may make, in bursts of 10 s worth; a site stream may "
            "send 10 times as many messages. 0: no limit.",
        ),
    ] = 200.0,
    max_package_bytes: Annotated[
        str,
        typer.Option(
            "--max-package-bytes",
            envvar="MINGA_BROKER_MAX_PACKAGE_BYTES",
            help="Largest working-dir package accepted (bytes or a size "
            "like 200MiB; at most 512MiB); clients read it before "
            "uploading.",
        ),
    ] = "64MiB",
    metrics_listen: Annotated[
        str,
        typer.Option(
            "--metrics-listen",
            help="HOST:PORT to serve Prometheus metrics on, at /metrics (port 0: any free port; docs/metrics.md).",
            show_default="off",
        ),
    ] = "",
    web_listen: Annotated[
        str,
        typer.Option(
            "--web-listen",
            help="HOST:PORT to serve the web dashboard on, over TLS when the broker has a certificate "
            "(port 0: any free port; docs/dashboard.md).",
            show_default="off",
        ),
    ] = "",
) -> None:
    """Serve the broker until Ctrl-C or SIGTERM."""
    from minga.common.domain import MingaError

    with needs(call.command_path, "broker"):
        from minga.scheduler.server import Broker, BrokerConfig

    ttl_seconds = flag_value("--lease-ttl", parse_duration, lease_ttl)
    if ttl_seconds < 10:
        raise typer.BadParameter(
            f"{lease_ttl} is shorter than two heartbeats: use 10s or more", param_hint="--lease-ttl"
        )
    if rate_limit < 0:
        raise typer.BadParameter(f"{rate_limit:g} is negative: use 0 (no limit) or more", param_hint="--rate-limit")
    package_limit = flag_value("--max-package-bytes", parse_size, max_package_bytes)
    if metrics_listen:
        check_listen("--metrics-listen", metrics_listen)
    if web_listen:
        check_listen("--web-listen", web_listen)
    configure_logging()
    broker = Broker(
        BrokerConfig(
            listen=listen,
            db_url=db,
            admin_token_file=admin_token_file,
            token_key_file=token_key_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
            lease_ttl_seconds=ttl_seconds,
            advertise=advertise,
            pki_dir=pki_dir,
            site_listen=site_listen,
            site_advertise=site_advertise,
            rate_limit=rate_limit,
            max_package_bytes=package_limit,
            metrics_listen=metrics_listen,
            web_listen=web_listen,
        )
    )
    try:
        broker.start()
    except MingaError as exc:
        raise errors.usage_error(str(exc)) from exc
    stopped = threading.Event()
    with stop_signals(stopped):
        try:
            _announce(broker, call.output)
            threading.Thread(target=_set_when_done, args=(broker, stopped), name="broker-wait", daemon=True).start()
            wait_until(stopped)
        finally:
            broker.stop(grace=2.0)
    typer.echo("broker stopped", err=True)


def _set_when_done(broker: Any, stopped: threading.Event) -> None:
    broker.wait()
    stopped.set()


def _announce(broker: Any, output: Output) -> None:  # a scheduler.server.Broker: imported only to serve
    address: str = broker.address
    token_file: Path = broker.admin_token_file
    bootstrapped = broker.bootstrap_token is not None
    leading: bool = broker.leading
    site_address: str = broker.site_address
    metrics_url: str = broker.metrics_url
    web_url: str = broker.web_url
    data = {
        "address": address,
        "admin_token_file": str(token_file),
        "bootstrapped": bootstrapped,
        "leading": leading,
        "site_address": site_address,
        "metrics_url": metrics_url,
        "web_url": web_url,
    }

    def human() -> None:
        typer.echo(
            f"broker listening on {address}"
            + ("" if leading else " as a standby: it takes over when the leading broker of its store stops")
        )
        if site_address:
            typer.echo(f"sites connect with mutual TLS on {site_address}")
        if metrics_url:
            typer.echo(f"Prometheus metrics at {metrics_url}")
        if web_url:
            typer.echo(f"web dashboard at {web_url}")
        if bootstrapped:
            typer.echo(f"the bootstrap admin token was written to {token_file} (readable only by you)")
            typer.echo(f"  use it with: export {_exports(broker, address)} MINGA_TOKEN=$(cat {token_file})")
        typer.echo("stop with Ctrl-C", err=True)

    if output == Output.json:
        render.print_json_line(data)  # one line, flushed: scripts can read the address at once
    else:
        human()


def _exports(broker: Any, address: str) -> str:  # a scheduler.server.Broker, as in _announce
    """`MINGA_BROKER=... MINGA_CA=...`: every setting the next command needs, so the hint pastes as is."""
    from minga.common.paths import data_dir
    from minga.common.pki import CA_CERT

    words = [f"MINGA_BROKER={address}"]
    cfg = broker.config
    if broker.site_address:  # a federation CA: users verify the broker with it
        ca = ((cfg.pki_dir or data_dir() / "pki") / CA_CERT).expanduser().resolve()
        words.append(f"MINGA_CA={shlex.quote(str(ca))}")
    elif cfg.tls_cert is not None:
        words.append("MINGA_CA=<the CA certificate that signed --tls-cert>")
    return " ".join(words)


@app.command("status")
@with_call()
def status(call: Call) -> None:
    """Ask every broker of the --broker list whether it leads (exit 3 if none does)."""
    import grpc

    with call.client() as c:
        answers = c.broker_statuses()
    items = []
    for address, answer in answers:
        if isinstance(answer, grpc.RpcError) and answer.code() in (
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
        ):
            raise answer  # a token problem, not a broker's: say so once
        items.append(
            render.broker_status_to_dict(address, None, _why(answer))
            if isinstance(answer, grpc.RpcError)
            else render.broker_status_to_dict(address, answer)
        )
    call.show(items, lambda: render.brokers_table(items))
    if not any(item["leading"] for item in items):
        raise errors.CliError("no broker of the list leads", errors.EXIT_UNREACHABLE)


def _why(err: grpc.RpcError) -> str:
    details = (err.details() or "no details").split(";")[0]  # gRPC appends its debug trail after ";"
    return f"{err.code().name}: {details}"
