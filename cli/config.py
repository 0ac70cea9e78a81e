"""Where the CLI keeps its settings, and how a broker address and token are chosen.

Precedence for every connection setting is: command-line flag > environment
variable > the config file that `minga login` writes. The config file holds a
bearer token, so it is created readable only by its owner (mode 0600) from the
very first byte, never chmod-ed after the fact.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minga.common.paths import config_dir

BROKER_ENV = "MINGA_BROKER"
TOKEN_ENV = "MINGA_TOKEN"
CA_ENV = "MINGA_CA"
CONFIG_FILE = "config.json"
# `minga up` marks the config it writes, so a later run may refresh it but never
# overwrites one that `minga login` wrote.
WRITTEN_BY_KEY = "written_by"
WRITTEN_BY_UP = "minga up"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


@dataclass(frozen=True)
class Connection:
    """How to reach the broker and who to say we are."""

    broker: str | None  # "host:port", or several brokers of one store: "h1:p1,h2:p2"
    token: str | None = field(repr=False)  # a bearer secret: never in a repr or a traceback
    ca_file: Path | None


def load_config(path: Path | None = None) -> dict[str, str]:
    """The saved settings, or {} when there is no config yet.

    A config that is not valid JSON raises ValueError naming the file, so the
    user knows which file to fix or delete.
    """
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    warn_if_exposed(path, "config file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"config file {path} is not valid JSON ({exc.msg}): fix it or run `minga login` again"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a JSON object: fix it or run `minga login` again")
    return {k: v for k, v in data.items() if isinstance(v, str)}


def warn_if_exposed(path: Path, what: str) -> bool:
    """One line on stderr when a file holding a secret is readable by group or others
    (copied with the wrong umask, say); a warning, not an error, so nothing stops."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return False
    if not mode & 0o077:
        return False
    print(
        f"warning: {what} {path} is readable by others (mode {mode:04o}) and holds a secret: chmod 600 {path}",
        file=sys.stderr,
    )
    return True


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` so that only the owner can ever read it.

    The file is created with mode 0600 via os.open and then atomically moved
    into place, so neither a half-written nor a world-readable file is visible.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old leftover tmp file may have had another mode
        with os.fdopen(fd, "w") as fh:
            fd = -1
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd != -1:
            os.close(fd)
    os.replace(tmp, path)


def save_config(settings: dict[str, str], path: Path | None = None) -> Path:
    """Persist the connection settings (`minga login`)."""
    path = path or config_path()
    write_private(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return path


def resolve_connection(
    broker: str | None = None,
    token: str | None = None,
    ca_file: Path | str | None = None,
    *,
    config: dict[str, str] | None = None,
) -> Connection:
    """Pick each setting from flag, else env, else config file."""
    env = os.environ
    cfg = load_config() if config is None else config
    broker = broker or env.get(BROKER_ENV) or cfg.get("broker") or None
    token = token or env.get(TOKEN_ENV) or cfg.get("token") or None
    ca = ca_file or env.get(CA_ENV) or cfg.get("ca_file") or None
    return Connection(broker=broker, token=token, ca_file=Path(ca) if ca else None)
