"""The flags of the commands that cli.fast may run without typer, read from the typer tree.

A command qualifies when its code is an action (cli/actions/, which never imports
typer) and every flag it takes is of a kind cli.fastparse reads exactly as click
does: flags, strings, integers, decimals, paths and choices, with no env var or
callback of their own. The result is plain JSON, cached by cli.fast.
"""

from __future__ import annotations

import enum
import typing
from pathlib import Path
from typing import Any

from minga.cli.call import SHARED_FLAGS
from minga.cli.fastparse import without_none

ACTIONS = "minga.cli.actions."
_TYPES = {str: "str", int: "int", float: "float", Path: "path"}


class Unfit(Exception):  # noqa: N818 - not an error: the command stays on typer
    """A flag cli.fastparse cannot read exactly as click would."""


def build() -> dict[str, Any]:
    """{"root": [param...], "commands": {"job submit": {"action", "shared", "params"}}}."""
    import typer.core
    import typer.main

    from minga.cli.main import app

    root = typer.main.get_group(app)
    ctx = root.make_context("minga", ["--help"], resilient_parsing=True)
    commands: dict[str, Any] = {}
    for group_name in root.list_commands(ctx):
        group = root.get_command(ctx, group_name)
        if not isinstance(group, typer.core.TyperGroup):
            continue  # a command of the root itself (login, up): not an action
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            try:
                commands[f"{group_name} {name}"] = _command(command)
            except Unfit:
                continue
    return {"root": _params(root.params), "commands": commands}


def _command(command: Any) -> dict[str, Any]:
    action = getattr(command.callback, "minga_action", None)
    if action is None or not action.__module__.startswith(ACTIONS):
        raise Unfit
    params = _params(command.params)
    own = {p.name for p in command.params} - set(SHARED_FLAGS)
    takes = set(typing.get_type_hints(action)) - {"return"}
    shared = [name for name in SHARED_FLAGS if name in {p["name"] for p in params} and name not in takes]
    if not own <= takes:
        raise Unfit
    return {"action": f"{action.__module__}:{action.__qualname__}", "shared": shared, "params": params}


def _params(params: list[Any]) -> list[dict[str, Any]]:
    return [_param(p) for p in params if not (p.name == "help" and p.is_eager)]


def _param(p: Any) -> dict[str, Any]:
    if p.envvar or p.callback is not None or getattr(p, "count", False) or p.secondary_opts or p.is_eager:
        raise Unfit
    if getattr(p, "prompt", None):
        raise Unfit
    annotation = p.type_descriptor.annotation
    if p.param_type_name == "argument":
        base = _base(annotation)
        return {"name": p.name, "opts": [], "kind": "argument", "nargs": p.nargs, "required": p.required, **base}
    if p.is_flag:
        if annotation is not bool or p.default not in (False, None):
            raise Unfit
        return {"name": p.name, "opts": list(p.opts), "kind": "flag", "type": "str", "default": False}
    base = _base(annotation)
    default = p.default.value if isinstance(p.default, enum.Enum) else p.default
    if isinstance(default, Path):
        default = str(default)
    if default is not None and not isinstance(default, str | int | float):
        raise Unfit
    return {"name": p.name, "opts": list(p.opts), "kind": "option", "multiple": p.multiple, "default": default, **base}


def _base(annotation: Any) -> dict[str, Any]:
    """The value type of `X`, `X | None` or `list[X]`, as cli.fastparse names it."""
    annotation = without_none(annotation)
    if annotation is None:
        raise Unfit
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    if annotation in _TYPES:
        return {"type": _TYPES[annotation]}
    if isinstance(annotation, type) and issubclass(annotation, enum.StrEnum):
        return {
            "type": "choice",
            "choices": [m.value for m in annotation],
            "enum": f"{annotation.__module__}:{annotation.__qualname__}",
        }
    raise Unfit
