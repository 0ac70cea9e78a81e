"""Checks on what callers send, each error naming the offending field."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from minga.common.countries import is_country_code
from minga.common.domain import RUN_ENV_NAMES, InvalidArgument, Inventory, JobSpec
from minga.common.site_messages import RunReport

MAX_ENTRYPOINT = 16_384
MAX_NAME = 128
MAX_ENV_VARS = 128
MAX_ENV_VALUE = 8_192
MAX_ENV_BYTES = 256 * 1024  # all env and secret env keys and values together
MAX_GPU_MODELS = 32
MAX_COUNTRIES = 250
MAX_REPORT_MESSAGE = 16_384  # a run report's or a health message's text
MAX_RUN_ID = 128
MAX_LOG_CHUNK = 4 * 1024 * 1024  # agents send 1 MiB chunks
MAX_AGENT_VERSION = 64
MAX_HELLO_RUNS = 100_000
MAX_PIP = 64
MAX_GPUS = 1_024
MAX_PACKAGE_BYTES = 64 * 1024 * 1024
MAX_ATTEMPTS = 100
MAX_WALLTIME = 90 * 24 * 3600
MAX_WEIGHT = 1e6

# Matched with fullmatch: `$` alone would also accept a trailing newline.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_slug(field: str, value: str) -> str:
    if not SLUG.fullmatch(value):
        raise InvalidArgument(
            f"{field} {value!r} is not valid: "
            "use 1-63 lowercase letters, digits and '-', starting with a letter or digit"
        )
    return value


ACCOUNT_PARTS = ("institution", "project", "user")


def check_account_id(kind: str, key: str) -> str:
    """A project's or a user's account id, '<institution>/<project>' or
    '<institution>/<project>/<user>', each part a slug: the one check for limits and weights."""
    want = ACCOUNT_PARTS if kind == "user" else ACCOUNT_PARTS[:2]
    parts = key.split("/")
    if len(parts) != len(want):
        shape = "/".join(f"<{w}>" for w in want)
        raise InvalidArgument(f"id must be {shape} for a {kind}; got {key[:128]!r}")
    for what, part in zip(want, parts, strict=True):
        check_slug(f"id's {what} name", part)
    return key


def check_country(field: str, value: str) -> str:
    """An assigned ISO 3166-1 alpha-2 code, upper-cased: XX is refused, not stored."""
    value = value.upper()
    if not COUNTRY.fullmatch(value):
        raise InvalidArgument(f"{field} {value!r} is not an ISO 3166 two-letter country code")
    if not is_country_code(value):
        raise InvalidArgument(f"{field} {value!r} is not an assigned ISO 3166-1 country code (e.g. AR, BR, CL, MX)")
    return value


def check_weight(weight: float) -> float:
    """A fair-share weight of any node of the account tree."""
    if not 0 < weight <= MAX_WEIGHT:
        raise InvalidArgument(f"weight {weight:g} must be positive and at most {MAX_WEIGHT:g}")
    return weight


def check_digest(field: str, value: str) -> str:
    if not DIGEST.fullmatch(value):
        raise InvalidArgument(f"{field} must look like sha256:<64 hex digits>")
    return value


def check_job_spec(spec: JobSpec) -> None:
    if not spec.entrypoint.strip():
        raise InvalidArgument("spec.entrypoint is empty: give the command after `--`")
    _max_len("spec.entrypoint", spec.entrypoint, MAX_ENTRYPOINT)
    _max_len("spec.name", spec.name, MAX_NAME)
    _printable("spec.name", spec.name)
    res = spec.resources
    _in_range("spec.resources.gpus", res.gpus, 0, MAX_GPUS)
    _in_range("spec.resources.cpus", res.cpus, 0, 4096)
    _in_range("spec.resources.memory_mb", res.memory_mb, 0, 64 * 1024 * 1024)
    _in_range("spec.resources.min_gpu_memory_mb", res.min_gpu_memory_mb, 0, 4 * 1024 * 1024)
    if len(res.gpu_models) > MAX_GPU_MODELS:
        raise InvalidArgument(
            f"spec.resources.gpu_models has {len(res.gpu_models)} models; the limit is {MAX_GPU_MODELS}"
        )
    if not math.isfinite(res.cpus):
        raise InvalidArgument("spec.resources.cpus must be a finite number")
    for model in res.gpu_models:
        if not model or len(model) > 64:
            raise InvalidArgument("spec.resources.gpu_models holds an empty or too long model name")
    if len(spec.countries) > MAX_COUNTRIES:
        raise InvalidArgument(f"spec.countries has {len(spec.countries)} entries; the limit is {MAX_COUNTRIES}")
    for country in spec.countries:
        check_country("spec.countries", country)
    _in_range("spec.walltime_seconds", spec.walltime_seconds, 0, MAX_WALLTIME)
    _in_range("spec.max_attempts", spec.max_attempts, 1, MAX_ATTEMPTS)
    _in_range("spec.priority", spec.priority, -1000, 1000)
    env = spec.runtime_env
    _check_env(spec)
    if len(env.pip) > MAX_PIP:
        raise InvalidArgument(f"spec.runtime_env.pip has {len(env.pip)} packages; the limit is {MAX_PIP}")
    for pkg in env.pip:
        # A leading option or a line break would smuggle pip options (--index-url) into requirements.
        smuggles = pkg.lstrip().startswith("-") or any(c in pkg for c in "\r\n\0")
        if not pkg.strip() or len(pkg) > 256 or smuggles:
            raise InvalidArgument(f"spec.runtime_env.pip entry {pkg!r} is not a package requirement")
    if spec.project and len(spec.project) > 2 * MAX_NAME:
        raise InvalidArgument(f"spec.project is {len(spec.project)} characters; the limit is {2 * MAX_NAME}")
    if spec.data_country:
        check_country("spec.data_country", spec.data_country)
    if len(spec.site_labels) > 32:
        raise InvalidArgument("spec.site_labels has more than 32 labels")
    for key, value in spec.site_labels:
        if not key or len(key) > 63 or len(value) > 63 or not (key + value).isprintable():
            raise InvalidArgument(
                f"spec.site_labels entry {key[:70]!r} must be 1-63 printable characters, value up to 63"
            )
    if env.working_dir_digest:
        check_digest("spec.runtime_env.working_dir_digest", env.working_dir_digest)


MAX_POOLS = 64
MAX_POOL_GPUS = 100_000
MAX_GPU_MEMORY_MB = 4 * 1024 * 1024


def check_inventory(inv: Inventory) -> Inventory:
    """What an agent says its site has: the broker places jobs on it, so it must make sense."""
    if len(inv.gpus) > MAX_POOLS:
        raise InvalidArgument(f"inventory.gpus has {len(inv.gpus)} pools; the limit is {MAX_POOLS}")
    if len({p.model for p in inv.gpus}) != len(inv.gpus):
        raise InvalidArgument("inventory.gpus names a model twice")
    for pool in inv.gpus:
        if not pool.model or len(pool.model) > 64 or not pool.model.isprintable():
            raise InvalidArgument(f"inventory.gpus model {pool.model[:70]!r} must be 1-64 printable characters")
        _in_range(f"inventory.gpus[{pool.model}].total", pool.total, 0, MAX_POOL_GPUS)
        _in_range(f"inventory.gpus[{pool.model}].free", pool.free, 0, pool.total)
        _in_range(f"inventory.gpus[{pool.model}].largest_node", pool.largest_node, 0, pool.total)
        _in_range(f"inventory.gpus[{pool.model}].memory_mb", pool.memory_mb, 0, MAX_GPU_MEMORY_MB)
    if not math.isfinite(inv.cpus):
        raise InvalidArgument("inventory.cpus must be a finite number")
    _in_range("inventory.cpus", inv.cpus, 0, 10_000_000)
    _in_range("inventory.memory_mb", inv.memory_mb, 0, 2**50)
    _in_range("inventory.nodes", inv.nodes, 0, 1_000_000)
    return inv


def _check_env(spec: JobSpec) -> None:
    """Plain and secret env together: counts, names, sizes. An error about a secret
    names its key and never echoes its value."""
    env, secret = spec.runtime_env.env, spec.secret_env
    if len(env) + len(secret) > MAX_ENV_VARS:
        raise InvalidArgument(
            f"spec.runtime_env.env and spec.secret_env hold {len(env) + len(secret)} "
            f"variables together; the limit is {MAX_ENV_VARS}"
        )
    total = 0
    for field, pairs in (("spec.runtime_env.env", env), ("spec.secret_env", secret)):
        for key, value in pairs:
            if not ENV_KEY.fullmatch(key):
                raise InvalidArgument(f"{field} key {key[:140]!r} is not a valid variable name")
            if key in RUN_ENV_NAMES:
                raise InvalidArgument(
                    f"{field} key {key!r} is set by minga on every run (see docs/preemption.md); choose another name"
                )
            _max_len(f"{field}[{key}]", value, MAX_ENV_VALUE)
            if "\0" in value:
                raise InvalidArgument(f"{field}[{key}] holds a NUL character, which no environment can carry")
            total += len(key) + len(value.encode())
    if total > MAX_ENV_BYTES:
        raise InvalidArgument(
            f"spec.runtime_env.env and spec.secret_env hold {total} bytes together; the limit is {MAX_ENV_BYTES}"
        )
    both = sorted({k for k, _ in env} & {k for k, _ in secret})
    if both:
        raise InvalidArgument(f"spec.secret_env key {both[0]!r} is also in spec.runtime_env.env: give it once")


def check_run_report(run_id: str, message: str) -> None:
    """What a site says about a run: stored as the job's reason, so it is bounded."""
    _max_len("run.run_id", run_id, MAX_RUN_ID)
    _max_len("run.message", message, MAX_REPORT_MESSAGE)


def check_hello_runs(reports: Sequence[RunReport]) -> None:
    """The runs a site lists when it connects: a bounded list of bounded reports."""
    if len(reports) > MAX_HELLO_RUNS:
        raise InvalidArgument(f"hello.runs lists {len(reports)} runs; the limit is {MAX_HELLO_RUNS}")
    for report in reports:
        check_run_report(report.run_id, report.message)


def check_health_message(message: str) -> None:
    _max_len("health.message", message, MAX_REPORT_MESSAGE)


def check_log_chunk(run_id: str, offset: int, data: bytes) -> None:
    _max_len("log.run_id", run_id, MAX_RUN_ID)
    _in_range("log.offset", offset, 0, 2**62)
    if len(data) > MAX_LOG_CHUNK:
        raise InvalidArgument(f"log.data is {len(data)} bytes; the limit is {MAX_LOG_CHUNK}")


def check_hello(agent_version: str, runs: int) -> None:
    _max_len("hello.agent_version", agent_version, MAX_AGENT_VERSION)
    _in_range("hello.runs", runs, 0, MAX_HELLO_RUNS)


def _printable(field: str, value: str) -> None:
    """Names are shown in terminals: a control character could rewrite what an admin sees."""
    if not value.isprintable():
        raise InvalidArgument(f"{field} holds a control character")


def _max_len(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is {len(value)} characters; the limit is {limit}")


def _in_range(field: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidArgument(f"{field} is {value:g}; it must be between {low:g} and {high:g}")
