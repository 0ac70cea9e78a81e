"""Site owners' lending policies: who may borrow a site's GPUs, how many at once, for how
long, when, and what may reach its Ray cluster.

Pure values and rules only (no I/O, no clock): `scheduler/policy/lending_verdicts.py` applies them to
a snapshot at a given `now`, and the CLI uses the same parsers to check flags before
anything is sent. Guests, the rules that bind every job, and time windows (in the site's own
IANA time zone, running past midnight when they end before they start) are told in
docs/lending.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_INDEX = {d.lower(): i for i, d in enumerate(DAYS)}
_WINDOW = re.compile(r"^(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")
_PIP_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_LIST = 200


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly time window in a site's local time.

    `days` are the weekdays it starts on (0 = Monday); `start` and `end` are minutes after
    local midnight. An `end` at or before `start` runs past midnight into the next day.
    """

    days: tuple[int, ...]
    start: int
    end: int

    def contains(self, weekday: int, minute: int) -> bool:
        """Whether local (weekday, minute of the day) falls inside the window."""
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        return (weekday in self.days and minute >= self.start) or ((weekday - 1) % 7 in self.days and minute < self.end)

    def __str__(self) -> str:
        return f"{format_days(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True, slots=True)
class LendingPolicy:
    """What a site's owner allows. Every field's default allows everything.

    Borrowers: a guest is refused when its institution or its institution's country is
    denied; when any allow list is set, it must match one of them (an allowed country or
    an allowed institution). Windows: with `lend_windows`, guests run only inside one of
    them; never inside a `closed_windows` one. Runtime (all jobs): `no_env` refuses any
    environment variable, `env_allow` all but the listed names; `no_pip` refuses pip
    packages, `pip_allow` all but the listed distributions.
    """

    allow_countries: tuple[str, ...] = ()
    deny_countries: tuple[str, ...] = ()
    allow_institutions: tuple[str, ...] = ()
    deny_institutions: tuple[str, ...] = ()
    max_lent_gpus: int | None = None  # GPUs all guests together may hold at once
    guest_max_walltime_seconds: int = 0  # 0: no limit; else guests must declare one within it
    timezone: str = ""  # IANA zone of the windows, e.g. America/Belem
    lend_windows: tuple[Window, ...] = ()
    closed_windows: tuple[Window, ...] = ()
    no_env: bool = False
    env_allow: tuple[str, ...] = ()
    no_pip: bool = False
    pip_allow: tuple[str, ...] = ()  # normalized distribution names (PEP 503)

    @property
    def has_windows(self) -> bool:
        return bool(self.lend_windows or self.closed_windows)

    @property
    def limits_runtime(self) -> bool:
        return self.no_env or bool(self.env_allow) or self.no_pip or bool(self.pip_allow)


@dataclass(frozen=True, slots=True)
class SiteLending:
    """A site's policy as the admin sees it: its owner (whose jobs are no guests), the
    policy (None: the site lends freely) and whether guests may start there now."""

    site: str
    institution: str
    policy: LendingPolicy | None
    open_now: bool


# -- parsing and checking -----------------------------------------------------------------


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_days(days: tuple[int, ...]) -> str:
    """Weekdays as ranges: (0,1,2,3,4) -> "Mon-Fri", (5,6) -> "Sat-Sun", all seven -> "daily"."""
    if len(days) == 7:
        return "daily"
    parts, i, ds = [], 0, sorted(days)
    while i < len(ds):
        j = i
        while j + 1 < len(ds) and ds[j + 1] == ds[j] + 1:
            j += 1
        parts.append(DAYS[ds[i]] if i == j else f"{DAYS[ds[i]]}-{DAYS[ds[j]]}")
        i = j + 1
    return ",".join(parts)


def _parse_days(text: str) -> tuple[int, ...]:
    if text.lower() in ("daily", "*"):
        return tuple(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        try:
            a = _DAY_INDEX[first.strip().lower()[:3]] if len(first.strip()) >= 3 else None
            b = _DAY_INDEX[last.strip().lower()[:3]] if sep else a
        except KeyError:
            a = None
        if a is None or b is None:
            raise ValueError(f"bad days {part!r}: use e.g. Mon-Fri, Sat,Sun or daily")
        d = a
        while True:  # a range may wrap: Fri-Mon is Fri, Sat, Sun, Mon
            days.add(d)
            if d == b:
                break
            d = (d + 1) % 7
    return tuple(sorted(days))


def _parse_time(text: str, end: bool) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"bad time {text!r}: use HH:MM from 00:00 to 23:59 (24:00 only as an end)")
    return hours * 60 + minutes


def parse_window(text: str) -> Window:
    """A window from "Mon-Fri 20:00-08:00", "Sat,Sun 00:00-24:00" or "22:00-06:00" (daily)."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError(f"bad window {text!r}: use DAYS HH:MM-HH:MM, e.g. 'Mon-Fri 20:00-08:00'")
    days = _parse_days(match["days"]) if match["days"] else tuple(range(7))
    start, end = _parse_time(match["start"], False), _parse_time(match["end"], True)
    if start == end % 1440 and end != 1440:
        raise ValueError(f"bad window {text!r}: it starts and ends at the same time")
    return Window(days, start, end)


def check_timezone(name: str) -> str:
    """An IANA zone name that `zoneinfo` knows, e.g. America/Belem."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as America/Belem") from exc
    return name


def pip_name(requirement: str) -> str:
    """The normalized distribution name of a pip requirement (PEP 503): "Torch_Audio>=2" ->
    "torch-audio"; "" for something that is not a named requirement (a URL, a path)."""
    match = _PIP_NAME.match(requirement)
    if not match or "://" in requirement or requirement.strip().startswith((".", "/")):
        return ""
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def check_policy(policy: LendingPolicy) -> LendingPolicy:
    """The policy, normalized (sorted, de-duplicated, names normalized), or ValueError."""
    lists = {}
    for name, check in (
        ("allow_countries", _country),
        ("deny_countries", _country),
        ("allow_institutions", _slug),
        ("deny_institutions", _slug),
        ("env_allow", _env_name),
        ("pip_allow", _pip_allowed),
    ):
        values = getattr(policy, name)
        if len(values) > MAX_LIST:
            raise ValueError(f"{name}: at most {MAX_LIST} entries")
        lists[name] = tuple(sorted({check(v) for v in values}))
    if policy.max_lent_gpus is not None and policy.max_lent_gpus < 0:
        raise ValueError("max_lent_gpus must be 0 or more (or unset for no limit)")
    if policy.guest_max_walltime_seconds < 0:
        raise ValueError("guest_max_walltime_seconds must be 0 (no limit) or more")
    if policy.no_env and lists["env_allow"]:
        raise ValueError("no_env and env_allow exclude each other")
    if policy.no_pip and lists["pip_allow"]:
        raise ValueError("no_pip and pip_allow exclude each other")
    if policy.has_windows and not policy.timezone:
        raise ValueError("time windows need the site's time zone, e.g. America/Belem")
    if policy.timezone:
        check_timezone(policy.timezone)
    if len(policy.lend_windows) + len(policy.closed_windows) > 50:
        raise ValueError("at most 50 time windows")
    return LendingPolicy(
        max_lent_gpus=policy.max_lent_gpus,
        guest_max_walltime_seconds=policy.guest_max_walltime_seconds,
        timezone=policy.timezone,
        lend_windows=policy.lend_windows,
        closed_windows=policy.closed_windows,
        no_env=policy.no_env,
        no_pip=policy.no_pip,
        **lists,
    )


def _country(code: str) -> str:
    c = code.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", c):
        raise ValueError(f"bad country {code!r}: use a two-letter ISO code such as CL, BR or MX")
    return c


def _slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise ValueError(f"bad institution {slug!r}: use its slug, e.g. uchile")
    return slug


def _env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid environment variable name")
    return name


def _pip_allowed(name: str) -> str:
    normalized = pip_name(name)
    if not normalized or normalized != re.sub(r"[-_.]+", "-", name.strip()).lower():
        raise ValueError(f"bad pip package {name!r}: give a distribution name alone, e.g. torch")
    return normalized


# -- the rules ----------------------------------------------------------------------------


def local_time(policy: LendingPolicy, now: float) -> tuple[int, int]:
    """(weekday, minute of the day) at `now` in the policy's time zone."""
    local = datetime.fromtimestamp(now, tz=UTC).astimezone(ZoneInfo(policy.timezone or "UTC"))
    return local.weekday(), local.hour * 60 + local.minute


def lending_open(policy: LendingPolicy, now: float) -> bool:
    """Whether guests may run on the site at `now` (its windows, in its time zone)."""
    if not policy.has_windows:
        return True
    weekday, minute = local_time(policy, now)
    if any(w.contains(weekday, minute) for w in policy.closed_windows):
        return False
    return not policy.lend_windows or any(w.contains(weekday, minute) for w in policy.lend_windows)


def windows_text(policy: LendingPolicy) -> str:
    """When the site lends, in words: "only outside Mon-Fri 08:00-20:00 America/Belem"."""
    parts = []
    if policy.lend_windows:
        parts.append("only during " + ", ".join(map(str, policy.lend_windows)))
    if policy.closed_windows:
        parts.append(("and never during " if parts else "only outside ") + ", ".join(map(str, policy.closed_windows)))
    return " ".join(parts) + f" {policy.timezone}"


def borrower_refusal(policy: LendingPolicy, site: str, institution: str, country: str) -> str | None:
    """Why `institution` (of `country`) may not borrow the site's GPUs, or None."""
    if institution in policy.deny_institutions:
        return f"lending: site {site} does not lend to {institution}"
    if country and country in policy.deny_countries:
        return f"lending: site {site} does not lend to institutions in {country}"
    if not (policy.allow_countries or policy.allow_institutions):
        return None
    if institution in policy.allow_institutions or (country and country in policy.allow_countries):
        return None
    allowed = []
    if policy.allow_countries:
        allowed.append("institutions in " + ", ".join(sorted(policy.allow_countries)))
    if policy.allow_institutions:
        allowed.append(", ".join(sorted(policy.allow_institutions)))
    return f"lending: site {site} lends only to {' and '.join(allowed)}"


def walltime_refusal(policy: LendingPolicy, site: str, walltime_seconds: int) -> str | None:
    """A guest must declare a walltime within the site's limit, or None."""
    limit = policy.guest_max_walltime_seconds
    if not limit or 0 < walltime_seconds <= limit:
        return None
    asked = format_duration(walltime_seconds) if walltime_seconds else "none"
    return (
        f"lending: site {site} lends only to guest jobs with a walltime of at most {format_duration(limit)} "
        f"(this job: {asked})"
    )


def format_duration(seconds: int) -> str:
    """4h, 90m -> "1h30m", 45s, 2d: how the CLI's --walltime flags spell durations."""
    parts, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def runtime_refusal(
    policy: LendingPolicy, site: str, env_names: frozenset[str], pip_names: frozenset[str]
) -> str | None:
    """Why the job's environment or pip packages may not reach the site's Ray cluster, or None.
    `pip_names` are normalized distribution names ("" for a URL or path requirement)."""
    if env_names and policy.no_env:
        return f"runtime: site {site} accepts no environment variables (this job sets {', '.join(sorted(env_names))})"
    if env_names and policy.env_allow:
        refused = sorted(env_names.difference(policy.env_allow))
        if refused:
            return (
                f"runtime: site {site} accepts only the environment variables {', '.join(policy.env_allow)} "
                f"(this job sets {', '.join(refused)})"
            )
    if pip_names and policy.no_pip:
        return f"runtime: site {site} installs no pip packages"
    if pip_names and policy.pip_allow:
        refused = sorted(n or "(a URL or path)" for n in pip_names.difference(policy.pip_allow))
        if refused:
            return (
                f"runtime: site {site} installs only the pip packages {', '.join(policy.pip_allow)} "
                f"(this job asks for {', '.join(refused)})"
            )
    return None
