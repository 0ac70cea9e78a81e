"""`minga agent run`: the site agent, against an existing Ray cluster or a local one."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import errors
from .site import CredentialOpt, credential_path

app = typer.Typer(help="Run this site's agent (site operators).", no_args_is_help=True)


def _load_credential(path: Path):  # type: ignore[no-untyped-def]
    from agent.credentials import load_credential

    if not path.exists():
        raise errors.usage_error(f"no site credential at {path}: run `minga site join` first, or pass --credential")
    try:
        return load_credential(path)
    except (OSError, ValueError, KeyError) as exc:
        raise errors.usage_error(f"cannot read site credential {path} ({exc}): run `minga site join` again") from exc


@app.command("run")
def run(
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Dashboard URL of the site's Ray "
                                                       "cluster, e.g. http://10.0.0.5:8265.", show_default=False)]
    = None,
    ray_local: Annotated[bool, typer.Option("--ray-local", help="Start a local Ray head for this agent.")] = False,
    gpus: Annotated[Optional[int], typer.Option("--gpus", help="GPUs the local Ray head offers (--ray-local).",
                                                show_default=False)] = None,
    gpu_model: Annotated[Optional[str], typer.Option("--gpu-model", help="GPU model name to advertise, e.g. A100.",
                                                     show_default="detected")] = None,
    gpu_memory: Annotated[Optional[int], typer.Option("--gpu-memory", help="MiB per GPU to advertise.",
                                                      show_default="detected")] = None,
    credential: CredentialOpt = None,
) -> None:
    """Connect this site to the broker and run the jobs it places here (Ctrl-C stops)."""
    if bool(ray_address) == ray_local:
        raise errors.usage_error("give exactly one of --ray-address URL (an existing Ray cluster) "
                                 "or --ray-local --gpus N (start one here)")
    if ray_local and gpus is None:
        raise errors.usage_error("--ray-local needs --gpus N (how many GPUs the local Ray head offers)")
    if not ray_local and gpus is not None:
        raise errors.usage_error("--gpus applies only with --ray-local; with --ray-address the agent "
                                 "reads the GPUs from the Ray cluster")
    if gpus is not None and gpus < 0:
        raise typer.BadParameter(f"{gpus} is negative", param_hint="--gpus")
    if gpu_memory is not None and gpu_memory < 0:
        raise typer.BadParameter(f"{gpu_memory} is negative", param_hint="--gpu-memory")
    cred = _load_credential(credential_path(credential))
    errors.note_connection(cred.broker, has_token=True)

    from agent.session import Agent, AgentConfig  # lazy: imports Ray

    head = None
    if ray_local:
        from agent.local_ray import LocalRayHead

        head = LocalRayHead(gpus=gpus, gpu_model=gpu_model)
        head.start()
        typer.echo(f"started a local Ray head with {gpus} GPUs: {head.dashboard_url}", err=True)
    try:
        agent = Agent(AgentConfig(
            broker=cred.broker, site_token=cred.token, ray_address=head.dashboard_url if head else ray_address,
            gpu_model=gpu_model, gpu_memory_mb=gpu_memory, ca_file=cred.ca_file,
        ))
        typer.echo(f"agent of site {cred.site} connecting to {cred.broker}; stop with Ctrl-C", err=True)
        agent.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if head is not None:
            head.stop()
    typer.echo("agent stopped", err=True)
