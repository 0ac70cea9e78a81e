"""Helpers for the long-running commands (broker serve, agent run, up): logging,
and turning SIGINT/SIGTERM into an orderly stop of exactly what we started."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def configure_logging(level: int = logging.INFO) -> None:
    """Long-running commands log to stderr with timestamps; `kill -USR1 PID` dumps
    every thread's stack to stderr, to see where a stuck process waits."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so `kill PID` runs the same cleanup as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_signals(stopped: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGINT/SIGTERM only set `stopped`; the caller stops things.

    Stay inside for the shutdown itself: a second Ctrl-C (or `timeout`, which
    signals the whole process group after the child) must not interrupt the
    cleanup halfway and leave a Ray head behind. Outside the main thread
    (tests driving the pieces) signals cannot be handled and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def handler(signum: int, frame: object) -> None:
        if stopped.is_set():
            sys.stderr.write("still stopping what was started, please wait ...\n")
        stopped.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wait_until(stopped: threading.Event) -> None:
    """Block until `stopped` is set (by a signal under stop_signals, or by another thread)."""
    while not stopped.wait(0.5):
        pass


@contextlib.contextmanager
def this_python_first_on_path() -> Iterator[None]:
    """Put this interpreter's bin dir first on PATH while local Ray heads start.

    A Ray head inherits our environment, and a job's `python` is looked up on
    its PATH: with this, `python` in a job is the interpreter minga runs in
    (which has Ray), even where the system has no `python` at all.
    """
    bin_dir = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([bin_dir, *(p for p in old.split(os.pathsep) if p and p != bin_dir)])
    try:
        yield
    finally:
        os.environ["PATH"] = old
