"""Input checks (scheduler/validation.py): each error names the offending field."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from minga.common.domain import GpuPool, InvalidArgument, Inventory, JobSpec, Resources, RuntimeEnv
from minga.scheduler.validation import (
    MAX_ATTEMPTS,
    MAX_ENV_VARS,
    MAX_GPUS,
    MAX_PIP,
    MAX_WALLTIME,
    check_account_id,
    check_country,
    check_digest,
    check_inventory,
    check_job_spec,
    check_slug,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
GOOD = JobSpec(
    entrypoint="python train.py --epochs 3",
    name="train",
    runtime_env=RuntimeEnv(
        working_dir_digest=DIGEST, pip=("torch==2.3", "numpy >= 1.26"), env=(("WANDB_MODE", "offline"), ("_X1", "a=b"))
    ),
    resources=Resources(gpus=4, gpu_models=("A100", "H100"), min_gpu_memory_mb=40_000, cpus=8, memory_mb=64_000),
    countries=("CL", "BR"),
    walltime_seconds=3600,
    priority=0,
    max_attempts=3,
)


def res(**kw) -> JobSpec:
    return replace(GOOD, resources=replace(GOOD.resources, **kw))


def env(**kw) -> JobSpec:
    return replace(GOOD, runtime_env=replace(GOOD.runtime_env, **kw))


def test_good_spec_passes():
    check_job_spec(GOOD)
    check_job_spec(JobSpec(entrypoint="echo"))  # defaults are valid


@pytest.mark.parametrize(
    "spec",
    [
        res(gpus=0),
        res(gpus=MAX_GPUS),
        res(cpus=0),
        replace(GOOD, max_attempts=MAX_ATTEMPTS),
        replace(GOOD, walltime_seconds=MAX_WALLTIME),
        replace(GOOD, priority=-1000),
        replace(GOOD, priority=1000),
        env(working_dir_digest=""),
        env(pip=("x",) * MAX_PIP),
        env(env=tuple((f"K{i}", "v") for i in range(MAX_ENV_VARS))),
        env(pip=("torch ; python_version >= '3.10'",)),
    ],
    ids=[
        "gpus-0",
        "gpus-max",
        "cpus-0",
        "attempts-max",
        "walltime-max",
        "priority-min",
        "priority-max",
        "no-digest",
        "pip-max",
        "env-max",
        "pip-marker",
    ],
)
def test_limits_are_inclusive(spec):
    check_job_spec(spec)


BAD = [
    ("spec.entrypoint", replace(GOOD, entrypoint="")),
    ("spec.entrypoint", replace(GOOD, entrypoint="   \n")),
    ("spec.entrypoint", replace(GOOD, entrypoint="x" * 16_385)),
    ("spec.name", replace(GOOD, name="n" * 129)),
    ("spec.resources.gpus", res(gpus=-1)),
    ("spec.resources.gpus", res(gpus=MAX_GPUS + 1)),
    ("spec.resources.cpus", res(cpus=-0.5)),
    ("spec.resources.cpus", res(cpus=float("nan"))),
    ("spec.resources.memory_mb", res(memory_mb=-1)),
    ("spec.resources.min_gpu_memory_mb", res(min_gpu_memory_mb=-1)),
    ("spec.resources.gpu_models", res(gpu_models=("",))),
    ("spec.resources.gpu_models", res(gpu_models=("m" * 65,))),
    ("spec.countries", replace(GOOD, countries=("CHL",))),
    ("spec.countries", replace(GOOD, countries=("C1",))),
    ("spec.countries", replace(GOOD, countries=("CL\n",))),
    ("spec.walltime_seconds", replace(GOOD, walltime_seconds=-1)),
    ("spec.walltime_seconds", replace(GOOD, walltime_seconds=MAX_WALLTIME + 1)),
    ("spec.max_attempts", replace(GOOD, max_attempts=0)),
    ("spec.max_attempts", replace(GOOD, max_attempts=MAX_ATTEMPTS + 1)),
    ("spec.priority", replace(GOOD, priority=1001)),
    ("spec.priority", replace(GOOD, priority=-1001)),
    ("spec.runtime_env.env", env(env=tuple((f"K{i}", "v") for i in range(MAX_ENV_VARS + 1)))),
    ("spec.runtime_env.env key", env(env=(("1BAD", "v"),))),
    ("spec.runtime_env.env key", env(env=(("A-B", "v"),))),
    ("spec.runtime_env.env key", env(env=(("OK\n", "v"),))),
    ("spec.runtime_env.env[BIG]", env(env=(("BIG", "v" * 8_193),))),
    ("spec.runtime_env.pip", env(pip=("x",) * (MAX_PIP + 1))),
    ("spec.runtime_env.pip", env(pip=("",))),
    ("spec.runtime_env.pip", env(pip=("--index-url=http://evil",))),
    ("spec.runtime_env.pip", env(pip=(" -e git+http://evil",))),
    ("spec.runtime_env.pip", env(pip=("numpy\n--index-url http://evil",))),
    ("spec.runtime_env.pip", env(pip=("p" * 257,))),
    ("spec.runtime_env.working_dir_digest", env(working_dir_digest="sha256:xyz")),
    ("spec.runtime_env.working_dir_digest", env(working_dir_digest="md5:" + "0" * 64)),
    ("spec.runtime_env.working_dir_digest", env(working_dir_digest=DIGEST + "\n")),
]


@pytest.mark.parametrize(("field", "spec"), BAD, ids=[f"{i}-{f}" for i, (f, _) in enumerate(BAD)])
def test_bad_spec_names_the_field(field, spec):
    with pytest.raises(InvalidArgument) as info:
        check_job_spec(spec)
    assert str(info.value).startswith(field), str(info.value)


# -- slugs, countries, digests -----------------------------------------------------


@pytest.mark.parametrize("value", ["uchile", "u", "usp-icmc", "0abc", "a" * 63])
def test_slug_accepts(value):
    assert check_slug("institution", value) == value


@pytest.mark.parametrize("value", ["", "UChile", "-x", "a_b", "a b", "a" * 64, "ñandú", "uchile\n", "a/b"])
def test_slug_rejects_naming_the_field(value):
    with pytest.raises(InvalidArgument) as info:
        check_slug("site", value)
    assert str(info.value).startswith("site ")


@pytest.mark.parametrize(("value", "expected"), [("CL", "CL"), ("br", "BR"), ("Mx", "MX")])
def test_country_is_upper_cased(value, expected):
    assert check_country("country", value) == expected


@pytest.mark.parametrize("value", ["", "C", "CHL", "C1", "C L", "CL\n", "ÇL"])
def test_country_rejects_naming_the_field(value):
    with pytest.raises(InvalidArgument) as info:
        check_country("institution.country", value)
    assert str(info.value).startswith("institution.country ")


def test_digest():
    assert check_digest("digest", DIGEST) == DIGEST
    for bad in ["", "sha256:", "sha256:" + "A" * 64, "sha256:" + "0" * 63, "sha256:" + "0" * 65, DIGEST + "\n"]:
        with pytest.raises(InvalidArgument) as info:
            check_digest("digest", bad)
        assert str(info.value).startswith("digest ")


# -- a site's inventory --------------------------------------------------------------


def _inv(**pool: object) -> Inventory:
    base = dict(model="A100", memory_mb=40960, total=8, free=4, largest_node=8)
    return Inventory(gpus=(GpuPool(**{**base, **pool}),), cpus=64.0, memory_mb=512_000, nodes=1)


def test_a_sane_inventory_passes() -> None:
    assert check_inventory(_inv()) == _inv()


@pytest.mark.parametrize(
    "inventory,field",
    [
        (_inv(total=-1), "inventory.gpus[A100].total"),
        (_inv(free=9), "inventory.gpus[A100].free"),
        (_inv(largest_node=9), "inventory.gpus[A100].largest_node"),
        (_inv(memory_mb=-5), "inventory.gpus[A100].memory_mb"),
        (_inv(model=""), "inventory.gpus model"),
        (_inv(model="A100\n"), "inventory.gpus model"),
        (Inventory(gpus=(GpuPool("A100", 1, 1, 1, 1), GpuPool("A100", 1, 1, 1, 1))), "names a model twice"),
        (Inventory(cpus=float("nan")), "inventory.cpus"),
        (Inventory(nodes=-2), "inventory.nodes"),
    ],
)
def test_an_impossible_inventory_is_refused_naming_the_field(inventory: Inventory, field: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(field)):
        check_inventory(inventory)


def test_account_ids_of_projects_and_users():
    """The one check behind limits and user weights: the shape by kind, each part a slug."""
    assert check_account_id("project", "uchile/nlp") == "uchile/nlp"
    assert check_account_id("user", "uchile/nlp/alice") == "uchile/nlp/alice"
    for kind, key, says in (
        ("project", "uchile", "id must be <institution>/<project> for a project"),
        ("project", "uchile/nlp/alice", "id must be <institution>/<project> for a project"),
        ("user", "uchile/nlp", "id must be <institution>/<project>/<user> for a user"),
        ("user", "uchile/nlp/Alice!", "id's user name 'Alice!' is not valid"),
        ("project", "UChile/nlp", "id's institution name 'UChile' is not valid"),
        ("user", "uchile//alice", "id's project name '' is not valid"),
    ):
        with pytest.raises(InvalidArgument, match=re.escape(says)):
            check_account_id(kind, key)
