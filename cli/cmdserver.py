"""A per-user process that keeps the CLI's libraries loaded, as Mercurial's chg does.

Importing grpc, the messages and rich costs a `minga` command more than all the rest of
its work. So the first command starts this server in the background, and later ones
hand it their command line, environment, working directory, umask and their own
stdin, stdout and stderr (passed as file descriptors, SCM_RIGHTS). The server forks a
child per command, which runs it on those descriptors exactly as the `minga` process
would have (cli.fast), and sends back its exit code. A terminal stays a terminal, so
colour and width are what the user would see anyway; Ctrl-C reaches the child.

The socket lives in the CLI cache directory of this code's fingerprint (mode 0700), so
new code gets a new server; the server answers only its own user, and leaves after
`IDLE_SECONDS` without a command or when its directory goes. `MINGA_CMDSERVER=off`
keeps every command in its own process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OFF_ENV = "MINGA_CMDSERVER"
SOCKET = "cmd.sock"
IDLE_SECONDS = 900.0
# What the server loads once, so that no command has to: the fast path and what it uses.
PRELOAD = (
    "minga.cli.fast",
    "minga.cli.fastparse",
    "minga.cli.actions.job",
    "minga.cli.client",
    "rich.console",
    "rich.table",
)


def enabled() -> bool:
    return os.environ.get(OFF_ENV, "").lower() not in ("off", "0", "no", "false") and hasattr(socket, "send_fds")


def socket_path(directory: Path) -> Path:
    return directory / SOCKET


# -- the `minga` process ------------------------------------------------------------------
def run_remote(directory: Path, argv: list[str]) -> int | None:
    """Have the server run `argv` on this process's stdin/stdout/stderr; its exit code,
    or None where no server answers (the command then runs here)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(socket_path(directory)))
    except OSError:
        conn.close()
        return None
    with conn:
        umask = os.umask(0)
        os.umask(umask)
        request = {
            "argv": argv,
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "umask": umask,
            "encoding": [
                (getattr(s, "encoding", "utf-8"), getattr(s, "errors", "strict"))
                for s in (sys.stdin, sys.stdout, sys.stderr)
            ],
        }
        try:
            socket.send_fds(conn, [_frame(json.dumps(request).encode())], [0, 1, 2])
            child = int(_read_frame(conn))
        except (OSError, ValueError):
            return None  # the server went away before it took the command: run it here
        forward = _forward_signals(child)
        try:
            answer = _read_frame(conn)
        finally:
            forward()
    return int(answer) if answer else 1  # no answer: the child died without saying


def _forward_signals(child: int) -> Callable[[], None]:
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP to this process go on to the child; returns
    a function that puts the old handlers back."""

    def send(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    old = {sig: signal.signal(sig, send) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def stop(directory: Path) -> bool:
    """SIGTERM to the server listening in `directory` (found by SO_PEERCRED); whether one was."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(socket_path(directory)))
        os.kill(struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0], signal.SIGTERM)
        return True
    return False


def spawn(directory: Path) -> None:
    """Start the server in the background for the next commands; never fail this one for it."""
    import subprocess

    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "minga.cli.cmdserver", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C there is not for it
            close_fds=True,
        )


def _frame(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def _read_frame(conn: socket.socket) -> bytes:
    head = _read_exactly(conn, 4)
    return _read_exactly(conn, struct.unpack("!I", head)[0]) if head else b""


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        piece = conn.recv(n - len(data))
        if not piece:
            return b""
        data += piece
    return data


# -- the server -----------------------------------------------------------------------
def serve(directory: Path, idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
    """Load the CLI, listen on the socket, and fork a child per command until idle, or
    until another server (newer, or started at the same moment) holds the socket."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    path = socket_path(directory)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = directory / f".{SOCKET}.{os.getpid()}"
    listener.bind(str(tmp))
    os.chmod(tmp, 0o600)
    listener.listen(16)
    os.replace(tmp, path)  # whole or not at all: a client never finds a socket not yet listening
    ours = path.stat().st_ino
    listener.settimeout(min(5.0, idle_seconds))  # how soon it sees it is idle or replaced
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are not waited for
    last = clock()
    try:
        while _holds(path, ours) and clock() - last < idle_seconds:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            last = clock()
            with conn:
                _take(conn, listener)
    finally:
        listener.close()
        if _holds(path, ours):
            path.unlink(missing_ok=True)


def _holds(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except OSError:
        return False


def _take(conn: socket.socket, listener: socket.socket) -> None:
    """One command: from its own user only, run by a forked child."""
    uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
    message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    if uid != os.getuid() or len(fds) != 3 or len(message) < 4:
        for fd in fds:
            os.close(fd)
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        threading.Thread(target=_end_with_the_caller, args=(conn,), daemon=True).start()
        code = 1
        try:
            code = _child(json.loads(message[4:]), fds)
        finally:
            try:
                conn.sendall(_frame(str(code).encode()))
            finally:
                os._exit(0)
    for fd in fds:
        os.close(fd)
    conn.sendall(_frame(str(pid).encode()))


def _end_with_the_caller(conn: socket.socket) -> None:
    """The caller sends nothing more; when its end closes, it has died (kill -9): so does
    the command, as it would have with the caller's own process."""
    with contextlib.suppress(OSError):
        conn.recv(1)
    os._exit(128 + signal.SIGKILL)


def _child(request: dict[str, Any], fds: list[int]) -> int:
    """Become the `minga` process the client would have been, and run its command."""
    import io

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(str(request["cwd"]))
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    streams = []
    for fd, (encoding, errors) in enumerate(request["encoding"]):
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        streams.append(io.TextIOWrapper(buffered, encoding=encoding, errors=errors, line_buffering=os.isatty(fd)))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.argv = ["minga", *request["argv"]]
    from minga.cli import fast

    code = 0
    try:
        fast.run_here(sys.argv[1:])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - a bug: its traceback, as the `minga` process would show it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):
                stream.flush()
    return code


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
