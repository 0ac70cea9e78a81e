"""The example federation and the named scenarios, shipped inside the package as package
data, so `minga sim` works after a plain (non-editable) `pip install` (issue 11).

`scheduler/sim/data/` holds the only copy; the repository's `examples/latam-federation.toml`
and `examples/scenarios` are symlinks to it, so the two can never diverge.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

FEDERATION_FILE = "latam-federation.toml"


def data_dir() -> Path:
    """The installed `scheduler/sim/data` folder (a plain folder: wheels install unzipped)."""
    return Path(str(files(__package__ or "minga.scheduler.sim").joinpath("data")))


def example_federation() -> Path:
    """The example federation: 19 Latin American countries built from the public traces."""
    return data_dir() / FEDERATION_FILE


def scenarios_dir() -> Path:
    """The folder of the named scenarios (`--scenario NAME` reads NAME.toml there)."""
    return data_dir() / "scenarios"
