"""The `minga` console script: the researcher's everyday commands start without typer.

Building minga's typer tree costs more than the whole of `minga job list` (typer
coerces each value through pydantic, and its help is drawn by rich). So the script
takes two short cuts, both kept in a per-user cache (`$MINGA_CACHE_DIR`, else the
platform's) under a fingerprint of the installed code, so an upgrade or an edit
starts a new cache:

- A help page (`-h`, `--help`) is printed as typer printed it last time for the same
  words, terminal and environment; the first time, typer draws it and it is kept.
- A command whose code needs no typer (cli/actions/) is read by cli.fastparse with
  the flags typer declared (cli.fastspec, read once from the tree) and run directly.

Whatever the short cuts do not take on (an unknown flag, a bad value, any other
command) goes to typer, so everything a user sees is typer's own. And all of this
usually runs in a child of the command server (cli.cmdserver), which has the
libraries loaded already.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any, NoReturn, TextIO

SPEC_FILE = "commands.json"
# What typer's and rich's output depends on, besides the words and the terminal.
HELP_ENV_PREFIXES = (
    "COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "PY_COLORS", "TTY_",
    "JUPYTER_", "TERMINAL_WIDTH", "FORCE_TERMINAL", "TYPER", "_TYPER", "GITHUB_ACTIONS", "DATABRICKS_",
    "LANG", "LC_", "HOME", "XDG_", "MINGA_",
)  # fmt: skip


SECRET_ENV = frozenset({"MINGA_TOKEN"})  # never in a key, even as a checksum: no help page depends on it


def main() -> None:
    """Run `minga` with sys.argv. A help page or a fast command goes through the command
    server (cli.cmdserver) where one answers, else runs here and starts one for the next
    commands; every other command (a broker, an agent, `up`: processes that last, and
    that their supervisor must be able to signal) runs in this process."""
    from minga.cli import cmdserver

    argv = sys.argv[1:]
    cache = Cache.open()
    if cache is None or not cmdserver.enabled() or _completing() or not served(argv, cache):
        run_here(argv, cache)
    code = cmdserver.run_remote(cache.directory, argv)
    if code is not None:
        sys.exit(code)
    try:
        run_here(argv, cache)
    finally:
        cmdserver.spawn(cache.directory)


def served(argv: list[str], cache: Cache) -> bool:
    """Whether the command server may run `argv`: a help page, or a fast command."""
    return wants_help(argv) or fast_parse(argv, cache) is not None


def run_here(argv: list[str], cache: Cache | None = None) -> NoReturn:
    """Run `minga ARGV` in this process: a kept help page, a fast command, or typer."""
    cache = cache or Cache.open()
    if cache is not None and not _completing():
        if wants_help(argv):
            sys.exit(help_page(argv, cache))
        code = run_fast(argv, cache)
        if code is not None:
            sys.exit(code)
    _typer()
    sys.exit(0)


def _typer() -> None:
    from minga.cli.main import app

    app(prog_name=os.path.basename(sys.argv[0]))  # as click names a console script; in a cmdserver child too


def _completing() -> bool:
    """Shell completion asks through the environment (`_MINGA_COMPLETE`): typer answers."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)


class Cache:
    """One directory of files for the installed code; older code's directories are removed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.spec: dict[str, Any] | None = None  # the fast commands' flags, once read (command_spec)

    @classmethod
    def open(cls) -> Cache | None:
        """The cache for this code, or None where there is no writable place for one."""
        from minga.common.paths import cache_dir

        base = cache_dir() / "cli"
        directory = base / code_fingerprint()
        if not directory.is_dir():
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # the command server's socket is here
            except OSError:
                return None
            import shutil

            for old in base.iterdir():
                if old != directory:
                    shutil.rmtree(old, ignore_errors=True)
        return cls(directory)

    def read(self, name: str) -> str | None:
        try:
            return (self.directory / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def write(self, name: str, text: str) -> None:
        """Write whole or not at all (a rename), and never fail the command for it."""
        tmp = self.directory / f".{name}.{os.getpid()}"
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.directory / name)
        except OSError:
            tmp.unlink(missing_ok=True)


def code_fingerprint() -> str:
    """Changes when minga's CLI code, typer, rich or Python change (file sizes and times)."""
    files = [Path(d, f) for d, _, names in os.walk(Path(__file__).parent) for f in names if f.endswith(".py")]
    for name in ("typer", "rich"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
    stamps = [sys.version] + [f"{p}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}" for p in sorted(files)]
    return checksum("\n".join(stamps))


def checksum(text: str) -> str:
    """64 bits of `text` (CRC-32 and Adler-32): a cache file's name, not a secret; zlib
    loads in a fraction of a millisecond, where hashlib would cost this command a few."""
    data = text.encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


# -- help pages ------------------------------------------------------------------------
def wants_help(argv: list[str]) -> bool:
    """A help flag before any `--`, or no words at all (typer then shows the root's help)."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    return not argv or any(word in ("-h", "--help") for word in words)


def help_key(argv: list[str]) -> str:
    """The words, and what the output's look depends on: the terminal and the environment."""
    terminal = []
    for fd in (0, 1, 2):
        try:
            terminal.append(tuple(os.get_terminal_size(fd)) if os.isatty(fd) else None)
        except OSError:
            terminal.append(None)
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(HELP_ENV_PREFIXES) and k not in SECRET_ENV)
    return "help-" + checksum(json.dumps([argv, terminal, env]))


def help_page(argv: list[str], cache: Cache) -> int:
    """Print the kept page; else let typer print it, and keep it when typer did show a
    help page, on stdout only, and ended well (so no command ever runs from here)."""
    key = help_key(argv)
    page = cache.read(key)
    if page is not None:
        sys.stdout.write(page)
        sys.stdout.flush()
        return 0
    shown, code, out, err = _typer_recording()
    if shown and code == 0 and not err:
        cache.write(key, out)
    return code


class _Tee:
    """A text stream that passes everything on and keeps a copy of what was written."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.copy: list[str] = []

    def write(self, text: str) -> int:
        written = self._stream.write(text)  # first: bytes raise TypeError, as click expects of a text stream
        self.copy.append(text)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _typer_recording() -> tuple[bool, int, str, str]:
    """Run typer on sys.argv: (whether it drew a help page, exit code, stdout, stderr)."""
    from typer._click import core as click_core

    shown: list[bool] = []
    draw = click_core.Context.get_help

    def get_help(self: click_core.Context) -> str:
        shown.append(True)
        return draw(self)

    click_core.Context.get_help = get_help  # type: ignore[method-assign]  # only this process, about to exit
    out, err = _Tee(sys.stdout), _Tee(sys.stderr)
    sys.stdout, sys.stderr = out, err  # a _Tee passes for the TextIO it wraps (__getattr__)
    try:
        _typer()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.stdout, sys.stderr = out._stream, err._stream
        click_core.Context.get_help = draw  # type: ignore[method-assign]  # put back as it was
    return bool(shown), code, "".join(out.copy), "".join(err.copy)


# -- commands without typer -----------------------------------------------------------------
def command_spec(cache: Cache) -> dict[str, Any]:
    """The fast commands' flags: kept, or read from the typer tree once and kept; read
    once a process (deciding whether to serve a command line reads them, then running it)."""
    if cache.spec is None:
        text = cache.read(SPEC_FILE)
        if text is not None:
            cache.spec = json.loads(text)
        else:
            from minga.cli import fastspec

            cache.spec = fastspec.build()
            cache.write(SPEC_FILE, json.dumps(cache.spec, sort_keys=True))
    return cache.spec


def fast_parse(argv: list[str], cache: Cache) -> tuple[Any, dict[str, Any], list[Any]] | None:
    """`argv` read as a fast command: (what was parsed, the command's spec, its params);
    None where typer should read it."""
    from minga.cli import fastparse

    spec = command_spec(cache)
    root = [fastparse.Param.from_json(p) for p in spec["root"]]
    commands = {name: [fastparse.Param.from_json(p) for p in c["params"]] for name, c in spec["commands"].items()}
    parsed = fastparse.parse(argv, root, commands)
    if parsed is None:
        return None
    return parsed, spec["commands"][parsed.command], commands[parsed.command]


def run_fast(argv: list[str], cache: Cache) -> int | None:
    """Run `argv` as a fast command; its exit code, or None where typer should run it."""
    found = fast_parse(argv, cache)
    if found is None:
        return None
    parsed, entry, params = found
    values = {p.name: _member(p, parsed.values[p.name]) for p in params}
    return run_action(entry["action"], parsed.command, parsed.root, entry["shared"], values, parsed.given)


def _member(param: Any, value: Any) -> Any:
    """A choice's value as its enum's member, as typer passes it."""
    if not param.enum or value is None:
        return value
    module, _, name = param.enum.partition(":")
    return getattr(importlib.import_module(module), name)(value)


def run_action(
    action_path: str,
    command: str,
    root: dict[str, Any],
    shared: list[str],
    values: dict[str, Any],
    given: frozenset[str] | None = None,
) -> int | None:
    """Call the action as typer's command would (`given`: the parameters the command line
    gave); None when it refused a flag before talking to the broker, so typer can run it
    again and word the refusal its way."""
    from minga.cli import errors
    from minga.cli.call import Call

    module, _, name = action_path.partition(":")
    action = getattr(importlib.import_module(module), name)
    connection = {flag: values.pop(flag) for flag in shared}
    call = Call(f"minga {command}", root, **connection, given=None if given is None else given - set(shared))
    try:
        action(call, **values)
    except errors.FlagError as exc:
        if not errors.connected():
            return None
        return errors.handle(exc)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - handle() re-raises what it does not know
        return errors.handle(exc)
    return 0
