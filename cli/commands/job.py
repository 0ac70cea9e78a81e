"""`minga job ...`: the flags of submit, list, status, logs, cancel and wait.

What each command does is in cli/actions/job.py, which needs no typer; here each
action's parameters get their flags and help.
"""

from __future__ import annotations

import typer

from minga.cli.actions import job, wait
from minga.cli.options import with_call

app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)

SUBMIT_FLAGS = {
    "entrypoint": typer.Argument(metavar="ENTRYPOINT", help="The command to run, after `--`.", show_default=False),
    "name": typer.Option("--name", help="A name to recognise the job by."),
    "gpus": typer.Option("--gpus", help="GPUs, all on one site and of one model."),
    "gpu_model": typer.Option("--gpu-model", help="Allowed GPU model (repeatable).", show_default=False),
    "min_gpu_memory": typer.Option(
        "--min-gpu-memory", help="Least memory per GPU: GB (e.g. 40) or a size (40GiB).", show_default=False
    ),
    "country": typer.Option(
        "--country", help="Country it may run in (repeatable; data residency).", show_default=False
    ),
    "cpus": typer.Option("--cpus", help="CPUs.", show_default="1"),
    "memory": typer.Option("--memory", help="Memory to reserve: 4GiB, 512MiB.", show_default=False),
    "walltime": typer.Option("--walltime", help="Time limit: 90s, 30m, 24h, 7d.", show_default="unlimited"),
    "env": typer.Option("--env", help="KEY=VALUE for the job (repeatable).", show_default=False),
    "secret_env": typer.Option(
        "--secret-env",
        help="KEY=VALUE, or KEY to take the value from your environment: given to the job "
        "like --env, shown nowhere (repeatable).",
        show_default=False,
    ),
    "pip": typer.Option("--pip", help="pip package to install (repeatable).", show_default=False),
    "working_dir": typer.Option(
        "--working-dir", help="Directory to ship with the job (.gitignore respected).", show_default=False
    ),
    "max_attempts": typer.Option(
        "--max-attempts",
        help="Failed runs before the job fails: lost sites, Ray failures, and your own with --retry-failed "
        "(preemption does not count).",
    ),
    "retry_failed": typer.Option(
        "--retry-failed", help="Requeue the job when your code exits non-zero too, up to --max-attempts."
    ),
    "project": typer.Option("--project", help="Project of your institution to charge.", show_default="default"),
    "data_country": typer.Option(
        "--data-country", help="Where the job's data is: prefer sites in or near it.", show_default=False
    ),
    "low_carbon": typer.Option(
        "--low-carbon",
        help="Prefer the sites with the cleanest grid (lowest gCO2e/kWh) among those that fit, after your "
        "institution's own sites and the data country.",
    ),
    "low_carbon_first": typer.Option(
        "--low-carbon-first",
        help="As --low-carbon, but the cleanest grid ranks before your own sites and the data country.",
    ),
    "no_low_carbon": typer.Option(
        "--no-low-carbon", help="No low-carbon preference, whatever the federation's default."
    ),
    "label": typer.Option("--label", help="KEY=VALUE the site must carry (repeatable).", show_default=False),
    "non_preemptible": typer.Option(
        "--non-preemptible", help="Never preempt it (honoured within your institution's guarantee)."
    ),
    "notify": typer.Option(
        "--notify",
        help="Webhook URL to POST job.started and job.ended to, signed with your secret "
        "(`minga token webhook-secret`); its host must be on the admin's allow-list.",
        show_default=False,
    ),
    "idempotency_key": typer.Option(
        "--idempotency-key", help="Same key, same job: safe to re-run this command.", show_default="random"
    ),
    "allow_unknown": typer.Option(
        "--allow-unknown",
        help="Queue it even if no site has its GPU model or country, or that many GPUs: for a site expected to "
        "join (else such a submit is refused).",
    ),
    "array": typer.Option(
        "--array",
        help="A job array, as Slurm's: 0-999, 1,3,5-9 or 0-99:2, with %K to run at most K at once (0-999%4). "
        "Each task is job ID_INDEX and sees MINGA_ARRAY_INDEX.",
        show_default=False,
    ),
    "after": typer.Option(
        "--after",
        help="Start only after job ID ends as COND: ID (succeeded), ID:ok, ID:any (ended, however) or "
        "ID:failed (failed or cancelled); repeatable; a job array's id: all its tasks. As Slurm's --dependency.",
        show_default=False,
    ),
    "wait": typer.Option(
        "--wait",
        help="Then stream its log until it ends, and exit as `minga job wait` does (0: it succeeded).",
    ),
    "file": typer.Option(
        "--file",
        "-f",
        help="A spec file (.toml, .yaml) whose keys are these flags' long names, `run` the command; "
        "flags given here override it.",
        show_default=False,
    ),
}
LIST_FLAGS = {
    "all_": typer.Option("--all", help="Include finished jobs."),
    "expand": typer.Option("--expand", "--tasks", help="List each task of a job array, not one line per array."),
    "state": typer.Option(
        "--state",
        help="Only jobs in this state: PENDING, LEASED, RUNNING, SUCCEEDED, FAILED, CANCELLING, CANCELLED.",
        show_default=False,
    ),
}
JOB_ID = typer.Argument(metavar="ID", help="Job id.")

app.command("submit")(with_call(flags=SUBMIT_FLAGS)(job.submit))
app.command("list")(with_call(flags=LIST_FLAGS)(job.list_jobs))
app.command("status")(with_call(flags={"job_id": typer.Argument(metavar="ID", help="Job id, e.g. j-123.")})(job.status))
app.command("logs")(
    with_call(
        output=False,
        flags={
            "job_id": JOB_ID,
            "follow": typer.Option(
                "--follow", "-f", help="Keep streaming until the job ends; a pending job is waited for until it starts."
            ),
        },
    )(job.logs)
)
app.command("cancel")(
    with_call(
        flags={
            "job_id": JOB_ID,
            "with_dependents": typer.Option(
                "--with-dependents", help="Cancel the jobs waiting for it (--after) too, and theirs in turn."
            ),
        }
    )(job.cancel)
)
app.command("wait")(
    with_call(
        flags={
            "job_id": typer.Argument(
                metavar="ID", help="Job ids (a job array's id: all its tasks).", show_default=False
            ),
            "timeout": typer.Option(
                "--timeout",
                help="Stop waiting after this long (90s, 30m, 24h; 0: look once); exit 6.",
                show_default="forever",
            ),
        }
    )(wait.wait)
)
