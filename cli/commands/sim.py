"""`minga sim`: replay a workload on a federation file, or a named scenario, through minga's
policy and three baselines, on simulated time (scheduler/sim). No broker needed."""

from __future__ import annotations

import json
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from minga.cli.extras import needs

if TYPE_CHECKING:
    from minga.scheduler.sim.federation import Federation
    from minga.scheduler.sim.scenario import Scenario
    from minga.scheduler.sim.workload import SimJob

app = typer.Typer(help="Simulate the scheduling policy on a federation and a workload.", invoke_without_command=True)

REPO = Path(__file__).resolve().parents[2]
# Options a scenario file replaces: naming one of them next to --scenario is an error.
WORKLOAD_OPTIONS = ("federation", "trace", "traces_dir", "jobs", "seed", "load")


class SimOutput(StrEnum):
    table = "table"
    json = "json"


@app.callback()
def run(
    ctx: typer.Context,
    federation: Annotated[
        Path | None,
        typer.Option(
            help="Federation file (TOML); default: the example shipped with minga "
            "(examples/latam-federation.toml, 19 countries).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    trace: Annotated[
        str, typer.Option(help="Task trace CSV (openb pod list), relative to --traces-dir or not, or 'synthetic'.")
    ] = "alibaba-openb-2023/openb_pod_list_gpuspec33.csv",
    traces_dir: Annotated[Path, typer.Option(help="The shared traces folder.")] = REPO.parent / "shared" / "traces",
    jobs: Annotated[int | None, typer.Option(help="Jobs to replay (trace: the last N GPU tasks).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator.")] = 0,
    load: Annotated[
        float, typer.Option(help="Offered load the arrivals are scaled to; 0 replays the trace's arrivals as they are.")
    ] = 1.5,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="A scenario file, or the NAME of "
            "a scenario shipped with minga "
            "(examples/scenarios/NAME.toml): its federation "
            "and jobs replace --federation and --trace."
        ),
    ] = None,
    policy: Annotated[list[str] | None, typer.Option(help="Policies to run (default: all four).")] = None,
    share_policy: Annotated[
        str | None, typer.Option(help="Override the file's share policy: static or contribution.")
    ] = None,
    periodic: Annotated[
        bool, typer.Option(help="A cycle every cycle_seconds while jobs wait, not only on events.")
    ] = False,
    low_carbon_share: Annotated[
        float,
        typer.Option(
            help="Also run minga with this share of the jobs (0 to 1, the same jobs on every run) "
            "opting in to low-carbon placement, and compare (docs/carbon.md).",
        ),
    ] = 0.0,
    low_carbon_first: Annotated[
        bool, typer.Option(help="The opting jobs rank grid intensity before their own sites (--low-carbon-first).")
    ] = False,
    output: Annotated[SimOutput, typer.Option(help="table or json on stdout.")] = SimOutput.table,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write the metrics as CSV.")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the full result as JSON.")] = None,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="PNG of GPUs held per country over time.")] = None,
) -> None:
    """Compare minga, fifo, slurm-classic and static on the same jobs (table or --output json)."""
    if ctx.invoked_subcommand is not None:
        return
    with needs(ctx.command_path, "sim"):
        from minga.scheduler.sim import report
        from minga.scheduler.sim.baselines import POLICIES
        from minga.scheduler.sim.examples import example_federation

        if plot_file:
            import matplotlib  # noqa: F401 - checked before a long simulation, not after it

    scen = _scenario(ctx, scenario) if scenario is not None else None
    if scen is None and load < 0:
        raise typer.BadParameter("must be 0 (arrivals as they are) or more", param_hint="--load")
    if not 0.0 <= low_carbon_share <= 1.0:
        raise typer.BadParameter("must be from 0 to 1", param_hint="--low-carbon-share")
    if low_carbon_first and not low_carbon_share:
        raise typer.BadParameter("needs --low-carbon-share above 0", param_hint="--low-carbon-first")
    fed = scen.federation if scen else _federation(federation or example_federation())
    if share_policy:
        if share_policy not in ("static", "contribution"):
            raise typer.BadParameter("static or contribution", param_hint="--share-policy")
        fed = replace(fed, settings=replace(fed.settings, policy=share_policy))
    work = list(scen.jobs) if scen else _workload(fed, trace, traces_dir, jobs, seed, load)
    names = policy or list(POLICIES)
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise typer.BadParameter(f"unknown policy {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    variant = report.LowCarbonVariant(low_carbon_share, low_carbon_first) if low_carbon_share else None
    if variant and "minga" not in names:
        raise typer.BadParameter("compares with minga's run: include --policy minga", param_hint="--low-carbon-share")
    result = report.compare(fed, work, names, periodic=periodic, low_carbon=variant)
    if scen:
        result["scenario"] = scen.name
    if plot_file:
        try:
            report.plot(result, plot_file, fed.countries)
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    series = result.pop("series")
    if csv_file:
        csv_file.write_text(report.to_csv(result))
    if json_file:
        json_file.write_text(json.dumps({**result, "series": series}, indent=1))
    if output is SimOutput.json:
        typer.echo(json.dumps(result, sort_keys=True))
    else:
        typer.echo(report.table(result))


def _federation(path: Path) -> Federation:
    """The federation file, or exit 2 with an error naming it and what is wrong."""
    import tomllib

    from minga.scheduler.sim import federation as fedmod

    try:
        return fedmod.load(path)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        typer.echo(f"error: {path}: {what}", err=True)
        raise typer.Exit(2) from exc


def _scenario(ctx: typer.Context, arg: str) -> Scenario:
    """The scenario file named by --scenario (a path, or the name of a shipped one)."""
    from minga.scheduler.sim import scenario as scenmod
    from minga.scheduler.sim.examples import scenarios_dir

    clash = [
        f"--{k.replace('_', '-')}"
        for k in WORKLOAD_OPTIONS
        if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
    ]
    if clash:
        raise typer.BadParameter(
            f"a scenario brings its own federation and jobs; drop {', '.join(clash)}", param_hint="--scenario"
        )
    try:
        return scenmod.load(scenmod.resolve(arg, scenarios_dir()))
    except scenmod.ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _workload(fed: Federation, trace: str, traces_dir: Path, jobs: int | None, seed: int, load: float) -> list[SimJob]:
    """The trace's GPU tasks scaled to `load` (0: as they are), or the synthetic jobs."""
    from minga.scheduler.sim import workload

    weights = [(i.slug, i.weight) for i in fed.institutions]
    if trace == "synthetic":
        if load <= 0:
            raise typer.BadParameter("the synthetic generator needs a load above 0", param_hint="--load")
        models: dict[str, int] = {}
        for s in fed.sites:
            for p in s.inventory.gpus:
                models[p.model] = models.get(p.model, 0) + p.total
        return workload.synthetic(jobs or 10_000, weights, models, fed.capacity, seed=seed, load=load)
    path = Path(trace)
    if not path.is_absolute() and (traces_dir / trace).exists():
        path = traces_dir / trace
    if not path.exists():
        raise typer.BadParameter(
            f"no trace file {path}; pass --traces-dir (the folder holding "
            f"{trace}), a path to the CSV, or --trace synthetic",
            param_hint="--trace",
        )
    return workload.scale_to_load(workload.read_trace(path, weights, jobs), fed.capacity, load)[0]


@app.command("make-federation")
def make_federation(
    traces_dir: Annotated[Path, typer.Option(help="The shared traces folder.")] = REPO.parent / "shared" / "traces",
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the TOML; default: the shipped example (examples/latam-federation.toml)."),
    ] = None,
) -> None:
    """Regenerate the example federation from the traces, by the rules in its header."""
    from minga.scheduler.sim import make_federation as mf
    from minga.scheduler.sim.examples import example_federation

    out = out or example_federation()

    fed = mf.write(traces_dir, out)
    typer.echo(f"wrote {out}: {len(fed['sites'])} sites, {fed['total']} GPUs, {len(fed['institutions'])} institutions")
