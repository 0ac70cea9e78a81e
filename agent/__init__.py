"""The minga site agent: discovers a site's GPUs, keeps one session open with the
broker and reconciles the runs it was told to run with what its Ray cluster does."""

from __future__ import annotations

from importlib import metadata

try:
    AGENT_VERSION = metadata.version("minga")
except metadata.PackageNotFoundError:  # running from a bare checkout
    AGENT_VERSION = "0.0.0+unknown"
