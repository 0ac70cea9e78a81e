"""Where minga keeps files on a machine; shared by the broker, the agent and the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CONFIG_DIR_ENV = "MINGA_CONFIG_DIR"
DATA_DIR_ENV = "MINGA_DATA_DIR"
CACHE_DIR_ENV = "MINGA_CACHE_DIR"


def config_dir() -> Path:
    """`$MINGA_CONFIG_DIR`, else the platform's per-user config dir (CLI config, site credential)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_config_dir("minga"))


def data_dir() -> Path:
    """`$MINGA_DATA_DIR`, else the platform's per-user data dir (broker DB, admin token, `minga up`)."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("minga"))


def cache_dir() -> Path:
    """`$MINGA_CACHE_DIR`, else the platform's per-user cache dir (what the CLI may rebuild)."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("minga"))
