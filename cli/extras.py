"""Commands whose code comes with an extra say which extra to install when it is missing.

`pip install minga` is the researcher's CLI only; the broker, the site agent and the
simulator need `minga[broker]`, `minga[site]` and `minga[sim]`. Their modules are
imported inside the command, under `needs(command_path, "broker")`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from minga.cli.errors import CliError

# The top-level modules of each extra's distributions (pyproject's optional-dependencies).
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "broker": frozenset(
        {"sqlmodel", "sqlalchemy", "alembic", "psycopg", "numpy", "cryptography", "prometheus_client"}
        | {"starlette", "jinja2", "uvicorn"}  # the web dashboard
    ),
    "site": frozenset({"ray", "pynvml", "cryptography", "prometheus_client"}),
    "sim": frozenset({"numpy", "matplotlib"}),
}


@contextlib.contextmanager
def needs(command_path: str, *extras: str) -> Iterator[None]:
    """Imports inside that fail on a module of `extras` become one line naming the extras to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not any(missing in EXTRA_MODULES[extra] for extra in extras):
            raise
        noun = f"{' and '.join(extras)} extra{'s' if len(extras) > 1 else ''}"
        raise CliError(f"{command_path} needs the {noun}: pip install 'minga[{','.join(extras)}]'") from exc
