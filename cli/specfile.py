"""Spec files: `minga job submit -f job.toml` (or `.yaml`, `.yml`) takes its flags from a file.

The file's keys are the command's own long flag names (`gpu-model` or `gpu_model`), read
from the action's parameters, the ones cli/commands/ give their flags through
`with_call(flags=...)`: a flag added to the action later is a key of the file with no
change here. Its value has the flag's type (a list for a repeatable flag; a table of
KEY = VALUE for the flags that take KEY=VALUE words). The command line overrides the file.
Paths in the file are relative to the file's folder.

A file with an error names the file, the line, the field and what it allows, and is a
usage error (exit 2): nothing is submitted. TOML is read with the standard library's
tomllib, YAML with PyYAML (safe loading only). Nothing here imports typer (the import
contract of cli.actions): the fast path (cli.fast) runs a submit with a file too.
"""

from __future__ import annotations

import difflib
import enum
import functools
import inspect
import re
import shlex
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from minga.cli import errors
from minga.cli.fastparse import without_none

F = TypeVar("F", bound=Callable[..., Any])
SUFFIXES = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}


class SpecFileError(errors.CliError):
    """A mistake in a spec file: `FILE:LINE: FIELD: what is wrong; what is allowed` (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errors.EXIT_USAGE)


@dataclass(frozen=True)
class Field:
    """One key of a spec file: the action's parameter it fills, and what it takes."""

    name: str  # the parameter
    key: str  # the key, as documented: the long flag name without its dashes
    kind: str  # "str", "int", "float", "bool", "path", "list", "choice" or "run"
    table: bool = False  # a list of KEY=VALUE words: a table is taken too
    choices: tuple[str, ...] = ()
    enum: Any = None  # a choice's enum: the action gets its member

    def allowed(self) -> str:
        """What the field takes, in words."""
        if self.kind == "run":
            return "a command line (a string, run by the shell) or a list of words (run as they are)"
        if self.kind == "list":
            table = ", or a table of KEY = VALUE" if self.table else ""
            return f"a list of strings, or one string{table}"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        return {
            "str": "a string",
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "path": "a path (a string; a relative one is relative to the spec file's folder)",
        }[self.kind]


def fields_of(fn: Callable[..., Any], run: str, tables: Iterable[str] = ()) -> dict[str, Field]:
    """The keys a spec file may give `fn` (an action: `fn(call, ...)`), by key. `run` is the
    parameter that takes the command to run (the file's key `run`); `tables` the list
    parameters that take KEY=VALUE words. A parameter of a type no file value maps onto is
    left out, so it can only be a flag."""
    hints = typing.get_type_hints(fn)
    found: dict[str, Field] = {}
    for name in list(inspect.signature(fn).parameters)[1:]:
        if name == run:
            found["run"] = Field(name, "run", "run")
            continue
        field = _field(name, hints.get(name), name in set(tables))
        if field is not None:
            found[field.key] = field
    return found


_KINDS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", Path: "path"}


def _field(name: str, annotation: Any, table: bool) -> Field | None:
    key = name.rstrip("_").replace("_", "-")
    annotation = without_none(annotation)
    if annotation is None:
        return None
    if typing.get_origin(annotation) is list:
        return Field(name, key, "list", table=table) if typing.get_args(annotation) == (str,) else None
    if annotation in _KINDS:
        return Field(name, key, _KINDS[annotation])
    if isinstance(annotation, type) and issubclass(annotation, enum.StrEnum):
        return Field(name, key, "choice", choices=tuple(m.value for m in annotation), enum=annotation)
    return None


@dataclass(frozen=True)
class SpecFile:
    """A spec file read: the values it gives, by parameter, as their flags would give them."""

    path: Path
    values: dict[str, Any]
    lines: dict[str, int]  # a parameter -> the line of its key
    keys: dict[str, str]  # a parameter -> its key as the file spells it

    def error(self, name: str, message: str) -> SpecFileError:
        return _error(self.path, self.lines.get(name), self.keys.get(name, name), message)


def _error(path: Path, line: int | None, key: str | None, message: str) -> SpecFileError:
    where = f"{path}:{line}" if line else str(path)
    return SpecFileError(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def load(path: Path, fields: Mapping[str, Field]) -> SpecFile:
    """Read and check `path`; a SpecFileError names what is wrong and where."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        got = path.suffix or "a file without a suffix"
        raise _error(path, None, None, f"a spec file is TOML (.toml) or YAML (.yaml, .yml), not {got}")
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise errors.usage_error(f"cannot read spec file {path}: {why}") from exc
    data, lines = _toml(path, text) if kind == "TOML" else _yaml(path, text)
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    found: dict[str, int] = {}
    folder = path.expanduser().absolute().parent
    for written, raw in data.items():
        line = lines.get(written)
        key = str(written).replace("_", "-")
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _error(path, line, str(written), f"no such field: {hint}the fields are {', '.join(sorted(fields))}")
        if field.name in values:
            raise _error(path, line, str(written), f"given twice (as {keys[field.name]!r} too)")
        keys[field.name] = str(written)
        if line:
            found[field.name] = line
        try:
            values[field.name] = _convert(field, raw, folder)
        except ValueError:
            raise _error(path, line, str(written), f"{_describe(raw)} is not allowed: use {field.allowed()}") from None
    return SpecFile(path, values, found, keys)


def _convert(field: Field, raw: Any, folder: Path) -> Any:
    """`raw` (from TOML or YAML) as the flag's value would be; ValueError if it cannot be."""
    if field.kind == "run":
        if isinstance(raw, str) and raw.strip():
            return [raw]
        if isinstance(raw, list) and raw and all(_scalar(w) for w in raw):
            return [shlex.join(str(w) for w in raw)]
        raise ValueError(raw)
    if field.kind == "list":
        if _scalar(raw):
            return [str(raw)]
        if isinstance(raw, list) and all(_scalar(w) for w in raw):
            return [str(w) for w in raw]
        if field.table and isinstance(raw, dict) and all(_scalar(v) for v in raw.values()):
            return [f"{k}={v}" for k, v in raw.items()]
        raise ValueError(raw)
    if field.kind == "bool" and isinstance(raw, bool):
        return raw
    if isinstance(raw, bool):
        raise ValueError(raw)
    if field.kind == "int" and isinstance(raw, int):
        return raw
    if field.kind == "float" and isinstance(raw, int | float):
        return float(raw)
    if field.kind == "str" and _scalar(raw):
        return str(raw)
    if field.kind == "path" and isinstance(raw, str) and raw:
        given = Path(raw).expanduser()
        return given if given.is_absolute() else folder / given
    if field.kind == "choice" and raw in field.choices:
        return field.enum(raw)
    raise ValueError(raw)


def _scalar(value: Any) -> bool:
    """A string or a number (a boolean is neither: YAML reads `NO` as false)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _describe(raw: Any) -> str:
    if isinstance(raw, bool):
        return f"{str(raw).lower()} (a boolean; quote it if you meant the text)"
    if isinstance(raw, dict):
        return "a table"
    if isinstance(raw, list):
        return "a list" if raw else "an empty list"
    if raw is None:
        return "an empty value"
    text = repr(raw)
    return f"{text[:40]}..." if len(text) > 40 else text


# -- formats ------------------------------------------------------------------------------
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = " (at end of document)"


def _toml(path: Path, text: str) -> tuple[dict[str, Any], dict[str, int]]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT.search(message)
        if at:
            where, message = f"{path}:{at[1]}:{at[2]}", _TOML_AT.sub("", message)
        elif message.endswith(_TOML_END):  # the last line, where something was left open
            where = f"{path}:{max(1, len(text.rstrip().splitlines()))}"
            message = message.removesuffix(_TOML_END) + " (at the end of the file)"
        else:
            where = str(path)
        raise SpecFileError(f"{where}: not valid TOML: {message}") from None
    return data, {key: line for key in data if (line := _toml_line(text, key)) is not None}


def _toml_line(text: str, key: str) -> int | None:
    """The line of top-level `key`: `key = ...`, `key.sub = ...` or a `[key]` table."""
    name = re.escape(key)
    pattern = re.compile(rf"""^\s*(\[\s*)?(?:{name}|"{name}"|'{name}')\s*[=.\]]""")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return None


def _yaml(path: Path, text: str) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        import yaml
    except ImportError:
        raise errors.usage_error(
            f"cannot read {path}: reading YAML needs PyYAML (pip install pyyaml), or write the spec in TOML"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)  # SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SpecFileError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SpecFileError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise _error(path, 1, None, "a spec file is a mapping of fields (key: value), one per line")
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key = key_node.value
        if key in lines:
            raise _error(path, key_node.start_mark.line + 1, str(key), f"given twice (line {lines[key]} too)")
        lines[key] = key_node.start_mark.line + 1
    return {str(k): v for k, v in data.items()}, lines


# -- the command ----------------------------------------------------------------------------
def accepts_file(*, run: str, tables: Iterable[str] = ()) -> Callable[[F], F]:
    """Give action `fn(call, ...)` a parameter `file`: a spec file whose keys are `fn`'s
    other parameters (`fields_of`). A value the command line gave wins over the file's;
    for a `tables` parameter (KEY=VALUE words) both count, the command line's last, so it
    wins key by key. A bad value that `fn` refuses (a FlagError) for a field the file gave
    names the file, the line and the field."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        fields = fields_of(fn, run, tables)
        by_flag = {f"--{field.key}": field.name for field in fields.values() if field.kind != "run"}
        key_value = set(tables)

        @functools.wraps(fn)
        def with_file(call: Any, file: Path | None = None, **values: Any) -> Any:
            if file is None:
                return fn(call, **values)
            spec = load(file, fields)
            typed = _typed(call.given, values, signature)
            merged = dict(values)
            for name, value in spec.values.items():
                if name not in typed:
                    merged[name] = value
                elif name in key_value:  # KEY=VALUE words: the command line's keys replace the file's
                    keys = {word.partition("=")[0] for word in values[name]}
                    merged[name] = [*(w for w in value if w.partition("=")[0] not in keys), *values[name]]
            from_file = set(spec.values) - typed
            try:
                return fn(call, **merged)
            except errors.FlagError as exc:
                name = by_flag.get(exc.flag, "")
                if name in from_file:
                    raise spec.error(name, str(exc)) from exc
                raise

        file_param = inspect.Parameter(
            "file", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=Path | None
        )
        with_file.__signature__ = signature.replace(  # type: ignore[attr-defined]  # with_call reads this
            parameters=[*signature.parameters.values(), file_param]
        )
        with_file.__annotations__ = {**typing.get_type_hints(fn), "file": Path | None}
        with_file.minga_spec_fields = fields  # type: ignore[attr-defined]  # the keys, for the docs and tests
        return with_file  # type: ignore[return-value]  # fn's name and doc, and one parameter more

    return decorate


def _typed(given: frozenset[str] | None, values: Mapping[str, Any], signature: inspect.Signature) -> set[str]:
    """The parameters the command line gave: as the parser said (`given`), else those whose
    value is not the default. An empty list (no words after `--`) is never given."""
    if given is None:
        given = frozenset(name for name, value in values.items() if value != signature.parameters[name].default)
    return {name for name in given if name in values and values[name] not in (None, [], ())}
