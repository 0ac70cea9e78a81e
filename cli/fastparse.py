"""Read a command line with the flags typer declared (a `Spec`), without typer.

It follows click's rules for the cases it takes on: `--flag`, `--opt VALUE`,
`--opt=VALUE`, `-o VALUE`, `-oVALUE`, repeated options (a list, or the last one
wins), arguments between options, and `--` ending the options. Anything else (an
unknown flag, a missing or odd value, a help flag) is declined with `None`, and
typer reads the command line instead, so every message a user sees is typer's.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The value types a fast command may take; anything else keeps the command on typer.
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
HELP_FLAGS = frozenset({"-h", "--help"})


@dataclass(frozen=True)
class Param:
    """One flag or argument as typer declared it."""

    name: str  # the Python parameter it fills
    opts: tuple[str, ...]  # "--gpus", "-o"; () for an argument
    kind: str  # "flag", "option" or "argument"
    type: str  # "str", "int", "float", "path" or "choice"
    default: Any = None
    multiple: bool = False  # an option given several times makes a list
    nargs: int = 1  # an argument: 1, or -1 for all that are left
    required: bool = False
    choices: tuple[str, ...] = ()
    enum: str = ""  # a choice's enum, "module:Name": the command gets its member

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Param:
        return cls(**{**data, "opts": tuple(data["opts"]), "choices": tuple(data.get("choices", ()))})


@dataclass(frozen=True)
class Parsed:
    """A command line read: the root's flags, the command ("job list") and its own values."""

    root: dict[str, Any]
    command: str
    values: dict[str, Any]
    given: frozenset[str] = frozenset()  # the command's parameters the command line gave


class Decline(Exception):  # noqa: N818 - not an error: typer takes the command line instead
    """This command line is typer's to read."""


def parse(argv: Sequence[str], root: Sequence[Param], commands: Mapping[str, Sequence[Param]]) -> Parsed | None:
    """`argv` (after `minga`) read with the root's flags and the commands' ("job submit");
    None where typer should read it."""
    try:
        return _parse(list(argv), root, commands)
    except Decline:
        return None


def _parse(argv: list[str], root: Sequence[Param], commands: Mapping[str, Sequence[Param]]) -> Parsed:
    # The root and a group take their own flags before the next word (click's groups
    # do not intersperse), then the command takes the rest.
    root_given, rest = _read(argv, root, interspersed=False)
    root_values = _with_defaults(root_given, root)
    if len(rest) < 2 or rest[0].startswith("-") or rest[1].startswith("-"):
        raise Decline
    command = f"{rest[0]} {rest[1]}"
    if command not in commands:
        raise Decline
    values, left = _read(rest[2:], commands[command], interspersed=True)
    if left:
        raise Decline
    return Parsed(root_values, command, _with_defaults(values, commands[command]), frozenset(values))


def _read(argv: list[str], params: Sequence[Param], *, interspersed: bool) -> tuple[dict[str, Any], list[str]]:
    """The values `argv` gives `params` (only those it gives), and the words left: with
    `interspersed` False, everything from the first word that is not a flag."""
    by_opt = {opt: p for p in params for opt in p.opts}
    arguments = [p for p in params if p.kind == "argument"]
    given: dict[str, Any] = {}
    words: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--" and interspersed:
            words += argv[i:]
            break
        if not token.startswith("-") or token == "-":
            if token == "-":
                raise Decline
            if not interspersed:
                return given, argv[i - 1 :]
            words.append(token)
            continue
        param, value = _option(token, by_opt)
        if param.kind == "flag":
            if value is not None:
                raise Decline
            given[param.name] = True
            continue
        if value is None:
            if i == len(argv) or argv[i].startswith("-"):
                raise Decline  # click would take a flag-like word as the value: let it say so
            value = argv[i]
            i += 1
        converted = _convert(param, value)
        given[param.name] = [*given.get(param.name, []), converted] if param.multiple else converted
    if not interspersed:
        return given, []
    for param in arguments:
        if param.nargs == -1:
            given[param.name], words = list(words), []
        elif words:
            given[param.name] = _convert(param, words.pop(0))
        if param.required and given.get(param.name) in (None, []):
            raise Decline
    if words:
        raise Decline
    return given, []


def _option(token: str, by_opt: Mapping[str, Param]) -> tuple[Param, str | None]:
    """The option a flag-like word names, and the value it carries (`--x=1`, `-o1`)."""
    if token in by_opt:
        return by_opt[token], None
    if token.startswith("--"):
        name, eq, value = token.partition("=")
        if eq and name in by_opt:
            return by_opt[name], value
        raise Decline
    short = by_opt.get(token[:2])
    if short is None or short.kind == "flag":
        raise Decline
    return short, token[2:]


def _convert(param: Param, text: str) -> Any:
    """`text` as the parameter's type, only where the answer is beyond doubt."""
    if param.type == "str":
        return text
    if param.type == "int" and _INT.fullmatch(text):
        return int(text)
    if param.type == "float" and _FLOAT.fullmatch(text):
        return float(text)
    if param.type == "path" and text:
        return Path(text)
    if param.type == "choice" and text in param.choices:
        return text
    raise Decline


def _with_defaults(given: dict[str, Any], params: Sequence[Param]) -> dict[str, Any]:
    return {p.name: given[p.name] if p.name in given else _default(p) for p in params}


def _default(param: Param) -> Any:
    if param.kind == "flag":
        return bool(param.default)
    if param.default is None or param.type != "path":
        return param.default
    return Path(param.default)


def without_none(annotation: Any) -> Any | None:
    """X for `X` or `X | None`; None for a union of several types."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else None
    return annotation
