"""`minga admin policy|project|weight|guarantee|limits`: the fair-share tree and policy."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Annotated

import typer

from minga.cli import render
from minga.cli.options import BrokerOpt, CaOpt, OutputOpt, TokenOpt, client
from minga.cli.parsing import parse_duration
from minga.cli.render import Output
from minga.v1 import admin_pb2

policy_app = typer.Typer(
    help="The fair-share policy: share policy, half-life, base grant and its floor, "
    "model weights, preemption, gang reservations.",
    no_args_is_help=True,
)
project_app = typer.Typer(help="Projects: what jobs are charged to, inside an institution.", no_args_is_help=True)
weight_app = typer.Typer(help="Weights of countries, institutions and projects.", no_args_is_help=True)
guarantee_app = typer.Typer(help="Explicit per-model GPU guarantees.", no_args_is_help=True)
limits_app = typer.Typer(help="Borrowing and lending limits (GPUs).", no_args_is_help=True)


class SharePolicy(str, enum.Enum):
    contribution = "contribution"
    static = "static"


class Level(str, enum.Enum):
    """A level of the account tree below the federation."""

    country = "country"
    institution = "institution"
    project = "project"


def _seconds(flag: str, value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from exc


def _fraction(flag: str, value: float | None, ok: Callable[[float], bool], must: str) -> float | None:
    """`value` if it is in range; the broker checks again and is the authority."""
    if value is not None and not (math.isfinite(value) and ok(value)):
        raise typer.BadParameter(f"{value:g} is not {must}", param_hint=flag)
    return value


def _notice(value: str | None) -> float | None:
    if value is None:
        return None
    seconds = _seconds("--preemption-notice", value)
    if not 1 <= seconds <= 3600:
        raise typer.BadParameter(f"{value!r} is not from 1s to 1h (e.g. 60s)", param_hint="--preemption-notice")
    return seconds


def _min_age(value: str | None) -> float | None:
    """`--reservation-min-age`: 0 is a value here (every waiting gang reserves at once)."""
    if value is None:
        return None
    seconds = _seconds("--reservation-min-age", value)
    if not 0 <= seconds <= 7 * 86400:
        raise typer.BadParameter(f"{value!r} is not from 0s to 7d (e.g. 10m)", param_hint="--reservation-min-age")
    return seconds


def _model_weights(values: list[str]) -> list[admin_pb2.ModelWeight]:
    out = []
    for item in values:
        model, sep, weight = item.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not model or value <= 0:
            raise typer.BadParameter(
                f"{item!r} must look like MODEL=WEIGHT, e.g. H100=1.0", param_hint="--model-weight"
            )
        out.append(admin_pb2.ModelWeight(model=model, weight=value))
    return out


@policy_app.command("show")
def policy_show(
    ctx: typer.Context,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show the fair-share policy."""
    with client(ctx, broker, token, ca) as c:
        policy = render.policy_to_dict(c.get_policy())
    render.show(output, policy, lambda: render.policy_table(policy))


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    share_policy: Annotated[
        SharePolicy | None, typer.Option("--policy", help="How institutions' weights are set.", show_default=False)
    ] = None,
    half_life: Annotated[
        str | None, typer.Option("--half-life", help="Usage decay half-life, e.g. 7d.", show_default=False)
    ] = None,
    base_grant: Annotated[
        float | None,
        typer.Option("--base-grant", min=0.0, help="Every institution's floor weight.", show_default=False),
    ] = None,
    grace: Annotated[
        str | None,
        typer.Option(
            "--preemption-grace", help="Runs younger than this are never preempted, e.g. 10m.", show_default=False
        ),
    ] = None,
    model_weight: Annotated[
        list[str] | None,
        typer.Option("--model-weight", help="MODEL=WEIGHT (repeatable), e.g. H100=1.0.", show_default=False),
    ] = None,
    fair_share_preemption: Annotated[
        bool | None,
        typer.Option(
            "--fair-share-preemption/--no-fair-share-preemption",
            help="Preempt for accounts below their fair share now (default on).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--preemption-threshold",
            help="Act only under (1 - T) x the fair share; 0 <= T < 1, e.g. 0.1.",
            show_default=False,
        ),
    ] = None,
    cap: Annotated[
        float | None,
        typer.Option(
            "--preemption-cap",
            help="Fraction of the federation's GPUs freed per cycle at most; 0 < C <= 1, e.g. 0.25.",
            show_default=False,
        ),
    ] = None,
    notice: Annotated[
        str | None,
        typer.Option(
            "--preemption-notice",
            help="SIGTERM, then this long before SIGKILL; 1s to 1h, e.g. 60s.",
            show_default=False,
        ),
    ] = None,
    base_grant_fraction: Annotated[
        float | None,
        typer.Option(
            "--base-grant-fraction",
            help="Contribution policy: every institution weighs at least F x the mean; 0 to 0.9, e.g. 0.25.",
            show_default=False,
        ),
    ] = None,
    min_age: Annotated[
        str | None,
        typer.Option(
            "--reservation-min-age",
            help="Gangs (multi-GPU jobs) waiting this long hold reservations "
            "first, earliest due first; 0s to 7d, e.g. 10m.",
            show_default=False,
        ),
    ] = None,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change the fair-share policy; what you do not name stays as it is."""
    policy = admin_pb2.Policy(
        share_policy=share_policy.value if share_policy else "",
        half_life_seconds=_seconds("--half-life", half_life),
        base_grant=base_grant or 0.0,
        preemption_grace_seconds=_seconds("--preemption-grace", grace),
        model_weights=_model_weights(model_weight or []),
        fair_share_preemption=fair_share_preemption,
        preemption_threshold=_fraction(
            "--preemption-threshold", threshold, lambda v: 0 <= v < 1, "at least 0 and below 1 (e.g. 0.1)"
        ),
        preemption_cap=_fraction("--preemption-cap", cap, lambda v: 0 < v <= 1, "above 0 and at most 1 (e.g. 0.25)"),
        preemption_notice_seconds=_notice(notice),
        base_grant_fraction=_fraction(
            "--base-grant-fraction", base_grant_fraction, lambda v: 0 <= v <= 0.9, "from 0 to 0.9 (e.g. 0.25)"
        ),
        reservation_min_age_seconds=_min_age(min_age),
    )
    with client(ctx, broker, token, ca) as c:
        result = render.policy_to_dict(c.set_policy(policy))
    render.show(output, result, lambda: render.policy_table(result))


@project_app.command("add")
def project_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name, e.g. nlp.")],
    institution: Annotated[str, typer.Option("--institution", help="Slug of the institution it belongs to.")],
    weight: Annotated[float, typer.Option("--weight", min=0.0, help="Share among its institution's projects.")] = 1.0,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a project to an institution (each institution also has `default`)."""
    with client(ctx, broker, token, ca) as c:
        project = render.project_to_dict(c.add_project(institution, name, weight))
    render.show(output, project, lambda: typer.echo(f"project {project['id']} added (weight {weight:g})"))


@project_app.command("list")
def project_list(
    ctx: typer.Context,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List projects."""
    with client(ctx, broker, token, ca) as c:
        items = [render.project_to_dict(p) for p in c.list_projects()]
    render.show(output, items, lambda: render.projects_table(items))


@weight_app.command("set")
def weight_set(
    ctx: typer.Context,
    kind: Annotated[Level, typer.Argument(help="country, institution or project.")],
    key: Annotated[str, typer.Argument(metavar="ID", help="CL, uchile or uchile/nlp.")],
    weight: Annotated[float, typer.Argument(help="The new weight (positive).")],
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Set the weight of one node of the account tree."""
    with client(ctx, broker, token, ca) as c:
        r = c.set_weight(kind.value, key, weight)
    data = {"kind": r.kind, "id": r.id, "weight": r.weight}
    render.show(output, data, lambda: typer.echo(f"{r.kind} {r.id} now weighs {r.weight:g}"))


@guarantee_app.command("set")
def guarantee_set(
    ctx: typer.Context,
    institution: Annotated[str, typer.Argument(help="Institution slug.")],
    gpu_model: Annotated[str, typer.Option("--model", help="GPU model, e.g. A100.")],
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="GPUs guaranteed; 0 removes the guarantee.")],
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Guarantee an institution GPUs of one model (checked against what the federation has)."""
    with client(ctx, broker, token, ca) as c:
        r = c.set_guarantee(institution, gpu_model, gpus)
    data = {"institution": r.institution, "gpu_model": r.gpu_model, "gpus": r.gpus}
    render.show(output, data, lambda: typer.echo(f"{r.institution} is guaranteed {r.gpus} {r.gpu_model}"))


@limits_app.command("set")
def limits_set(
    ctx: typer.Context,
    institution: Annotated[str, typer.Argument(help="Institution slug.")],
    borrow: Annotated[
        int, typer.Option("--borrow", min=-1, help="GPUs it may use beyond its guarantee; -1: unlimited.")
    ] = -1,
    lend: Annotated[int, typer.Option("--lend", min=-1, help="GPUs of its own it may lend; -1: unlimited.")] = -1,
    broker: BrokerOpt = None,
    token: TokenOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Set an institution's borrowing and lending limits (Kueue's borrowingLimit / lendingLimit)."""
    with client(ctx, broker, token, ca) as c:
        r = c.set_limits(institution, borrow, lend)
    data = {"institution": r.institution, "borrowing_limit": r.borrowing_limit, "lending_limit": r.lending_limit}
    render.show(
        output,
        data,
        lambda: typer.echo(
            f"{r.institution}: borrow {'unlimited' if r.borrowing_limit < 0 else r.borrowing_limit}, "
            f"lend {'unlimited' if r.lending_limit < 0 else r.lending_limit}"
        ),
    )
