"""`minga job submit -f FILE` (issue 15, part 2), through a real broker on port 0 over a
real SQLite file: a spec file gives the same job as the same flags, flags override it,
secrets come from the environment, and every kind of mistake names the file, the line,
the field and what it allows, with exit code 2 and nothing submitted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from minga.cli import errors, fastspec, specfile
from minga.cli.actions import job as job_actions
from minga.cli.client import BrokerClient
from minga.cli.main import app
from minga.common.domain import JobSpec
from tests.fixtures_broker import RunningBroker, start_broker

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[RunningBroker, str]]:
    running = start_broker(tmp_path)
    running.institution("uchile", "CL")
    ana = running.researcher("ana", "uchile")
    yield running, ana.token
    running.close()


def minga(broker: tuple[RunningBroker, str], *args: str, env: dict[str, str] | None = None) -> Result:
    running, token = broker
    return CliRunner().invoke(
        app, ["--broker", running.address, "--token", token, *args], env={"WANDB_API_KEY": None, **(env or {})}
    )


def spec_of(broker: tuple[RunningBroker, str], job_id: str) -> JobSpec:
    running, token = broker
    with BrokerClient(running.address, token) as c:
        return c.get_job(job_id).spec


def jobs_of(broker: tuple[RunningBroker, str]) -> int:
    running, token = broker
    with BrokerClient(running.address, token) as c:
        return len(c.list_jobs(include_finished=True))


def submit(broker: tuple[RunningBroker, str], *args: str, env: dict[str, str] | None = None) -> JobSpec:
    result = minga(broker, "job", "submit", *args, env=env)
    assert result.exit_code == 0, result.output
    return spec_of(broker, result.stdout.strip())


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


TOML = """\
name = "train"
run = ["python", "train.py", "--lr", "0.1"]
working-dir = "code"
gpus = 2
gpu_model = ["A100", "H100"]
min-gpu-memory = 40
cpus = 4
memory = "32GiB"
walltime = "12h"
country = ["cl", "BR"]
pip = ["torch>=2.3", "numpy"]
secret-env = ["WANDB_API_KEY"]
max-attempts = 5
retry-failed = true
project = "default"
data-country = "CL"
non-preemptible = true
allow-unknown = true

[env]
EPOCHS = 90
DATASET = "imagenet"

[label]
tier = "gold"
"""
FLAGS = [
    "--name", "train", "--working-dir", "{code}", "--gpus", "2", "--gpu-model", "A100", "--gpu-model", "H100",
    "--min-gpu-memory", "40", "--cpus", "4", "--memory", "32GiB", "--walltime", "12h", "--country", "cl",
    "--country", "BR", "--pip", "torch>=2.3", "--pip", "numpy", "--secret-env", "WANDB_API_KEY",
    "--max-attempts", "5", "--retry-failed", "--project", "default", "--data-country", "CL", "--non-preemptible",
    "--allow-unknown", "--env", "EPOCHS=90", "--env", "DATASET=imagenet", "--label", "tier=gold",
    "--", "python", "train.py", "--lr", "0.1",
]  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding a spec file's working dir, `code/`, and nothing else."""
    folder = tmp_path / "project"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "train.py").write_text("print('hi')\n")
    return folder


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".yml"])
def test_a_spec_file_makes_the_same_job_as_the_same_flags(broker, project: Path, suffix: str, monkeypatch) -> None:
    text = TOML if suffix == ".toml" else _yaml(TOML)
    path = write(project, f"job{suffix}", text)
    secret = {"WANDB_API_KEY": "wk-123"}
    monkeypatch.chdir(project.parent)  # the working dir is relative to the file's folder, not here
    by_file = submit(broker, "-f", str(path), env=secret)
    by_flags = submit(broker, *[w.replace("{code}", str(project / "code")) for w in FLAGS], env=secret)
    assert by_file == by_flags
    assert by_file.entrypoint == "python train.py --lr 0.1" and by_file.resources.gpus == 2
    assert by_file.runtime_env.working_dir_digest.startswith("sha256:")
    assert by_file.secret_env == (("WANDB_API_KEY", "***"),)  # the broker has it; it shows only the key


def _yaml(toml_text: str) -> str:
    """The same spec in YAML, through the two parsers (so the YAML is what PyYAML writes)."""
    import tomllib

    import yaml

    return yaml.safe_dump(tomllib.loads(toml_text), sort_keys=False)


def test_flags_override_the_file(broker, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "job.toml",
        'run = "python a.py"\nname = "from-file"\ngpus = 2\nmax-attempts = 5\ngpu-model = ["A100"]\n'
        'allow-unknown = true\n[env]\nA = "1"\nB = "2"\n',
    )
    spec = submit(
        broker, "-f", str(path), "--gpus", "0", "--max-attempts", "3", "--gpu-model", "T4", "--env", "B=3",
        "--", "python", "b.py",
    )  # fmt: skip
    assert spec.name == "from-file"  # not given: the file's
    assert spec.resources.gpus == 0 and spec.max_attempts == 3  # given, even as the default: the command line's
    assert spec.resources.gpu_models == ("T4",)  # a list given replaces the file's
    assert dict(spec.runtime_env.env) == {"A": "1", "B": "3"}  # KEY=VALUE: the command line wins key by key
    assert spec.entrypoint == "python b.py"


def test_a_secret_comes_from_the_environment_at_submit_time(broker, tmp_path: Path) -> None:
    path = write(tmp_path, "job.yaml", "run: python a.py\nallow-unknown: true\nsecret-env:\n  - HF_TOKEN\n")
    missing = minga(broker, "job", "submit", "-f", str(path), env={"HF_TOKEN": None})
    assert missing.exit_code == errors.EXIT_USAGE
    assert f"{path}:3: secret-env: HF_TOKEN is not set in your environment" in missing.stderr
    assert jobs_of(broker) == 0
    spec = submit(broker, "-f", str(path), env={"HF_TOKEN": "hf-secret"})
    assert spec.secret_env == (("HF_TOKEN", "***"),)
    listed = minga(broker, "job", "list", "-o", "json")
    assert listed.exit_code == 0 and "HF_TOKEN" in listed.stdout and "hf-secret" not in listed.stdout


BAD = [
    # (file name, content, what stderr must say)
    ("job.toml", 'run = "x"\ngpus = 2\ngpu = 1\n',
     "job.toml:3: gpu: no such field: did you mean 'gpus'? the fields are"),
    ("job.toml", 'run = "x"\n\ngpus = "two"\n', "job.toml:3: gpus: 'two' is not allowed: use a whole number"),
    ("job.toml", 'run = "x"\npip = "a"\nretry-failed = "yes"\n',
     "job.toml:3: retry-failed: 'yes' is not allowed: use true or false"),
    ("job.toml", 'run = "x"\n[pip]\nnumpy = "1"\n',
     "job.toml:2: pip: a table is not allowed: use a list of strings, or one string"),
    ("job.toml", 'run = "x"\ngpus = -1\n', "job.toml:2: gpus: -1 is negative: use 0 or more"),
    ("job.toml", 'run = "x"\nwalltime = "forever"\n', "job.toml:2: walltime: bad duration 'forever'"),
    ("job.toml", 'run = "x"\nworking-dir = "missing"\n', "job.toml:2: working-dir: "),
    ("job.toml", 'run = "x"\n[env]\nA-B = "1"\n', "job.toml:2: env: 'A-B' is not a valid environment variable name"),
    ("job.toml", "run = []\n",
     "job.toml:1: run: an empty list is not allowed: use a command line (a string, run by the shell)"),
    ("job.toml", 'run = "x"\ngpus = 2\ngpus = 3\n', "job.toml:3:9: not valid TOML: Cannot overwrite a value"),
    ("job.toml", 'run = "x"\ngpus = [2\n', "job.toml:2: not valid TOML: Unclosed array (at the end of the file)"),
    ("job.toml", 'run = "x"\ngpus = 1\ngpu_model = "A100"\ngpu-model = "T4"\n',
     "job.toml:4: gpu-model: given twice (as 'gpu_model' too)"),
    ("job.toml", 'run = "x"\nbroker = "evil:1"\n', "job.toml:2: broker: no such field"),
    ("job.yaml", "run: x\ncountry: NO\n",
     "job.yaml:2: country: false (a boolean; quote it if you meant the text) is not allowed"),
    ("job.yaml", "run: x\ngpus: 1\ngpus: 2\n", "job.yaml:3: gpus: given twice (line 2 too)"),
    ("job.yaml", "run: x\nenv: [a, b\n", "job.yaml:3:1: not valid YAML:"),
    ("job.yaml", "- run\n- x\n", "job.yaml:1: a spec file is a mapping of fields"),
    ("job.yml", "run: x\nname:\n", "job.yml:2: name: an empty value is not allowed: use a string"),
    ("job.json", "{}", "job.json: a spec file is TOML (.toml) or YAML (.yaml, .yml), not .json"),
    ("job.toml", 'gpus = 1\n', "no entrypoint: put the command after `--`"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "said"), BAD, ids=[f"{n}:{t!r}" for n, t, _ in BAD])
def test_a_mistake_in_a_spec_file_names_the_file_the_line_and_the_field(
    broker, tmp_path: Path, monkeypatch, name: str, text: str, said: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, name, text)
    result = minga(broker, "job", "submit", "-f", name)
    assert result.exit_code == errors.EXIT_USAGE, result.output
    assert said in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr  # one line
    assert jobs_of(broker) == 0


def test_a_missing_file_is_a_usage_error(broker, tmp_path: Path) -> None:
    result = minga(broker, "job", "submit", "-f", str(tmp_path / "nope.toml"))
    assert result.exit_code == errors.EXIT_USAGE
    assert f"cannot read spec file {tmp_path / 'nope.toml'}: No such file or directory" in result.stderr


def test_every_flag_of_submit_is_a_key_of_the_file() -> None:
    """Read from the typer tree, as cli.fast reads them: a flag added to `job submit` is a
    key of its spec files with no change to cli.specfile, taking the flag's kind of value."""
    params = fastspec.build()["commands"]["job submit"]["params"]
    fields = {f.name: f for f in job_actions.submit.minga_spec_fields.values()}
    for p in params:
        if p["name"] in ("file", "broker", "token", "ca", "output"):
            continue
        field = fields[p["name"]]
        if p["kind"] == "argument":
            assert field.key == "run"
            continue
        assert f"--{field.key}" in p["opts"]
        expected = "bool" if p["kind"] == "flag" else "list" if p["multiple"] else p["type"]
        assert field.kind == expected, p["name"]


def test_the_examples_parse() -> None:
    fields = job_actions.submit.minga_spec_fields
    train = specfile.load(EXAMPLES / "train.toml", fields)
    sweep = specfile.load(EXAMPLES / "sweep.yaml", fields)
    assert train.values["working_dir"] == sweep.values["working_dir"] == EXAMPLES / "train"
    assert (EXAMPLES / "train" / "train.py").is_file() and (EXAMPLES / "train" / "sweep.py").is_file()
    assert train.values["secret_env"] == ["WANDB_API_KEY"] and "EPOCHS=90" in train.values["env"]
    assert sweep.values["array"] == "0-49%4" and sweep.values["entrypoint"] == ["python sweep.py"]


def test_the_examples_submit(broker) -> None:
    spec = submit(broker, "-f", str(EXAMPLES / "train.toml"), "--allow-unknown", env={"WANDB_API_KEY": "k"})
    assert spec.name == "train-resnet" and spec.resources.gpu_models == ("A100", "H100")
    result = minga(
        broker, "job", "submit", "-f", str(EXAMPLES / "sweep.yaml"), "--allow-unknown", env={"WANDB_API_KEY": "k"}
    )
    assert result.exit_code == 0, result.output
    assert "50 tasks" in result.stderr


def _documented() -> list[tuple[str, str]]:
    """The spec files docs/cli.md shows, as (suffix, text)."""
    text = (ROOT / "docs" / "cli.template.md").read_text()
    section = text[text.index("### `minga job submit -f FILE`") : text.index("### Waiting in scripts")]
    return [(f".{kind}", body) for kind, body in re.findall(r"```(toml|yaml)\n(.*?)```", section, re.S)]


def test_the_documented_spec_files_are_the_examples_and_parse(tmp_path: Path) -> None:
    documented = _documented()
    assert [s for s, _ in documented] == [".toml", ".yaml", ".toml"]
    assert documented[0][1] in (EXAMPLES / "train.toml").read_text()
    assert documented[1][1] in (EXAMPLES / "sweep.yaml").read_text()
    fields = job_actions.submit.minga_spec_fields
    for number, (suffix, body) in enumerate(documented):
        path = write(tmp_path, f"doc{number}{suffix}", body)
        assert specfile.load(path, fields).values["entrypoint"]
