"""Parsing of what people type: durations, sizes, KEY=VALUE pairs, country codes.

Each parser raises ValueError with a message that shows an accepted example, so
the command can turn it into one clear line naming the flag.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from minga.cli.errors import FlagError

T = TypeVar("T")
V = TypeVar("V")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str) -> int:
    """Seconds in "90s", "30m", "24h", "7d", "1h30m" or a bare number of seconds."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+", value):
        return int(value)
    if not value or not re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", value):
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 30m, 24h, 7d or 1h30m")
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))
    return int(round(seconds))


def format_duration(seconds: float) -> str:
    """Short human form of a duration: 45s, 12m, 3h05m, 2d04h."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def parse_size(text: str) -> int:
    """Bytes in "4GiB", "512MiB", "2G", "1.5GB" or a bare number of bytes.

    KiB/MiB/GiB (and Ki/Mi/Gi) are powers of 1024; KB/MB/GB (and K/M/G) are
    powers of 1000, as in Kubernetes.
    """
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"bad size {text!r}: use e.g. 512MiB, 4GiB or 2G")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_bytes(n: int) -> str:
    """Human form with binary units: 812 B, 3.4 MiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns


def parse_env(pairs: list[str]) -> dict[str, str]:
    """{"K": "V"} from ["K=V", ...]; the value may be empty or contain '='."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r} has no '=': use KEY=VALUE")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
        env[key] = value
    return env


def parse_country(text: str) -> str:
    """An ISO 3166 alpha-2 code, upper-cased ("cl" -> "CL")."""
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise ValueError(f"bad country {text!r}: use a two-letter ISO code such as CL, BR or MX")
    return code


def parse_gpu_memory_mb(text: str) -> int:
    """MiB of GPU memory from "40" (GB, as GPUs are sold) or a size like "40GiB".

    A bare number counts 1000 MiB per GB on purpose: cards sold as "80 GB"
    report between 80,000 and 81,920 MiB, and all of them should qualify.
    """
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return int(float(value) * 1000)
    return parse_size(value) // (1024 * 1024)


def flag_value(flag: str, parse: Callable[[V], T], value: V) -> T:
    """`parse(value)`; its ValueError becomes a FlagError naming `flag`."""
    try:
        return parse(value)
    except ValueError as exc:
        raise FlagError(flag, str(exc)) from exc
