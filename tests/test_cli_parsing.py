"""Unit tests of what people type: durations, sizes, env pairs, countries, states."""

from __future__ import annotations

import pytest

from minga.cli.actions.job import entrypoint_of, parse_job_state
from minga.cli.errors import CliError
from minga.cli.parsing import (
    format_bytes,
    format_duration,
    parse_country,
    parse_duration,
    parse_env,
    parse_gpu_memory_mb,
    parse_size,
)
from minga.common.domain import JobState


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("2w", 1209600),
        ("45", 45),
        ("1.5h", 5400),
        (" 10M ", 600),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3x", "h", "-5m", "5 m", "1h-", "abc"])
def test_parse_duration_rejects_with_example(text: str) -> None:
    with pytest.raises(ValueError, match="use e.g. 90s, 30m, 24h, 7d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4GiB", 4 * 1024**3),
        ("512MiB", 512 * 1024**2),
        ("2G", 2 * 1000**3),
        ("1.5GB", 1_500_000_000),
        ("100", 100),
        ("64Ki", 65536),
        ("1 TiB", 1024**4),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "4XB", "-1G", "four"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size(text)


def test_gpu_memory_bare_number_is_marketing_gigabytes() -> None:
    assert parse_gpu_memory_mb("80") == 80_000  # an H100 "80GB" reports 81,559 MiB and must qualify
    assert parse_gpu_memory_mb("40GiB") == 40 * 1024


def test_parse_env() -> None:
    assert parse_env(["A=1", "B=", "URL=http://x?a=b"]) == {"A": "1", "B": "", "URL": "http://x?a=b"}


@pytest.mark.parametrize(("pair", "msg"), [("FOO", "has no '='"), ("=x", "not a valid"), ("1A=x", "not a valid")])
def test_parse_env_rejects(pair: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_env([pair])


def test_parse_country() -> None:
    assert parse_country("cl") == "CL"
    with pytest.raises(ValueError, match="two-letter ISO code"):
        parse_country("Chile")


def test_parse_job_state_any_case() -> None:
    assert parse_job_state("running") == JobState.RUNNING
    with pytest.raises(ValueError, match="use one of PENDING, LEASED"):
        parse_job_state("DONE")


def test_entrypoint_single_word_is_a_shell_line_several_are_quoted() -> None:
    assert entrypoint_of(["python train.py --lr 3e-4 | tee out"]) == "python train.py --lr 3e-4 | tee out"
    assert entrypoint_of(["python", "-c", "print('a b')"]) == "python -c 'print('\"'\"'a b'\"'\"')'"
    with pytest.raises(CliError, match="no entrypoint"):
        entrypoint_of([])


def test_formatting() -> None:
    assert format_duration(42) == "42s"
    assert format_duration(3600 + 5 * 60) == "1h05m"
    assert format_duration(2 * 86400 + 3600) == "2d01h"
    assert format_bytes(812) == "812 B"
    assert format_bytes(3 * 1024 * 1024 + 512 * 1024) == "3.5 MiB"
