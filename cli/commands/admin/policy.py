"""`minga admin policy show|set`: the fair-share policy."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Annotated, Any

import typer

from minga.cli import render
from minga.cli.call import Call
from minga.cli.options import with_call
from minga.cli.parsing import flag_value, parse_duration

app = typer.Typer(
    help="The fair-share policy: share policy, half-life, base grant and its floor, "
    "model weights, preemption, gang reservations; and the webhook allow-list.",
    no_args_is_help=True,
)


class SharePolicy(enum.StrEnum):
    contribution = "contribution"
    static = "static"


def _seconds(flag: str, value: str) -> float:
    return float(flag_value(flag, parse_duration, value))


def _duration(flag: str, value: str | None) -> float | None:
    return None if value is None else _seconds(flag, value)


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


def _model_weights(values: list[str]) -> tuple[tuple[str, float], ...]:
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
        out.append((model, value))
    return tuple(out)


@app.command("show")
@with_call()
def show(
    call: Call,
) -> None:
    """Show the fair-share policy and the webhook allow-list."""
    with call.client() as c:
        settings, hosts = c.get_policy_and_hosts()
    policy = {**render.policy_to_dict(settings), "webhook_hosts": list(hosts)}
    call.show(policy, lambda: render.policy_table(policy))


@app.command("set")
@with_call()
def set_policy(
    call: Call,
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
    low_carbon_default: Annotated[
        bool | None,
        typer.Option(
            "--low-carbon-default/--no-low-carbon-default",
            help="Jobs submitted without --low-carbon or --no-low-carbon prefer low-carbon sites (default off).",
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
    webhook_hosts: Annotated[
        str | None,
        typer.Option(
            "--webhook-hosts",
            help="Hosts job webhooks (--notify) may call, comma-separated, replacing the list: "
            "hooks.example.org,10.0.0.5, *.example.org for its subdomains; '' for none (the default).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Change the fair-share policy and the webhook allow-list; what you do not name stays as it is."""
    from minga.common.shares import PartialSettings, ShareSettings

    named: dict[str, Any] = {
        "policy": share_policy.value if share_policy else None,
        "half_life_seconds": _duration("--half-life", half_life),
        "base_grant": base_grant,
        "preemption_grace_seconds": _duration("--preemption-grace", grace),
        "model_weights": _model_weights(model_weight) if model_weight else None,
        "fair_share_preemption": fair_share_preemption,
        "low_carbon_default": low_carbon_default,
        "preemption_threshold": _fraction(
            "--preemption-threshold", threshold, lambda v: 0 <= v < 1, "at least 0 and below 1 (e.g. 0.1)"
        ),
        "preemption_cap": _fraction("--preemption-cap", cap, lambda v: 0 < v <= 1, "above 0 and at most 1 (e.g. 0.25)"),
        "preemption_notice_seconds": _notice(notice),
        "base_grant_fraction": _fraction(
            "--base-grant-fraction", base_grant_fraction, lambda v: 0 <= v <= 0.9, "from 0 to 0.9 (e.g. 0.25)"
        ),
        "reservation_min_age_seconds": _min_age(min_age),
    }
    # The flags given; the broker keeps every other setting (and, on the wire, one of the
    # first six given as zero: --base-grant 0, --half-life 0s).
    given = {name: value for name, value in named.items() if value is not None}
    update = PartialSettings(ShareSettings(**given), frozenset(given))
    hosts = None if webhook_hosts is None else [h.strip() for h in webhook_hosts.split(",") if h.strip()]
    with call.client() as c:
        settings, now_hosts = c.set_policy_and_hosts(update, hosts)
    result = {**render.policy_to_dict(settings), "webhook_hosts": list(now_hosts)}
    call.show(result, lambda: render.policy_table(result))
