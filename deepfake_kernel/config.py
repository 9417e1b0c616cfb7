"""Configuration as dataclasses, overridable from the command line.

Every field of a config dataclass becomes a ``--field-name`` option; ``from_args`` builds the dataclass
back from the parsed namespace. Entry points stay thin: they declare a dataclass, not an option list.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                       prefix: str = "") -> None:
    """Add one ``--[prefix-]option`` per field of ``cls`` (stored as ``prefix_field``); metadata ``help`` is the help."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        dest = f"{prefix}_{field.name}" if prefix else field.name
        kind = hints[field.name]
        origin = typing.get_origin(kind)
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
            kind, origin = args[0], typing.get_origin(args[0])
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if kind is bool:
            parser.add_argument(_option(dest), dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{help_text} (default: {default})")
        elif origin in (list, tuple):
            inner = typing.get_args(kind)[0] if typing.get_args(kind) else str
            parser.add_argument(_option(dest), dest=dest, default=None,
                                type=lambda s, inner=inner: [inner(x) for x in s.split(",") if x],
                                help=f"{help_text} (comma-separated; default: {','.join(map(str, default)) if default else 'all'})")
        else:
            parser.add_argument(_option(dest), dest=dest, default=None,
                                type=kind if kind in (int, float, str) else str,
                                help=f"{help_text} (default: {default})")


def from_args(cls: type[T], namespace: argparse.Namespace, prefix: str = "", **overrides: Any) -> T:
    """Build ``cls`` from parsed options; options left unset keep the dataclass defaults."""
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(namespace, f"{prefix}_{field.name}" if prefix else field.name, None)
        if value is not None:
            values[field.name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def config_options(config: Any, skip: tuple[str, ...] = (), prefix: str = "") -> list[str]:
    """The command-line options (of :func:`add_dataclass_args` with the same ``prefix``) that rebuild ``config``
    with :func:`from_args`: one per field away from its default (lists comma-joined, booleans as
    ``--x``/``--no-x``), fields in ``skip`` left out."""
    options = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        same = (list(value) == list(default) if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple))
                else value == default)
        if field.name in skip or same or value is None:
            continue
        dest = f"{prefix}_{field.name}" if prefix else field.name
        if isinstance(value, bool):
            options.append(_option(dest) if value else "--no-" + dest.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            options += [_option(dest), ",".join(map(str, value))]
        else:
            options += [_option(dest), str(value)]
    return options


def save_config(config: Any, path: str | Path) -> None:
    """Write a config dataclass as JSON (paths become strings)."""
    Path(path).write_text(json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n")


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config dataclass saved by :func:`save_config`; unknown keys are an error."""
    data = json.loads(Path(path).read_text())
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    return cls(**data)
