"""Helpers shared by every frozen config dataclass: dict/YAML round trips and `--set key=value`.

Values flow defaults -> YAML -> ``--set key=value`` -> explicit flags (house style 4).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ppl_edge.errors import PplEdgeError, check_choice

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str | bool) -> bool:
    """Parse a boolean explicitly (never ``type=bool``, official-code defect #8)."""
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise PplEdgeError(f"expected a boolean (true/false/1/0/yes/no), got {text!r}")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Coerce a YAML / command-line value to a field's annotated type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key)
    if origin is typing.Literal:
        check_choice(value, args, key)
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        inner = args[0] if args else str
        return tuple(_coerce(v, inner, key) for v in value)
    try:
        if annotation is bool:
            return parse_bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError) as err:
        raise PplEdgeError(f"{key}: expected {annotation.__name__}, got {value!r}") from err
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build a frozen dataclass from a dict, refusing unknown keys with a suggestion."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise PplEdgeError(f"unknown key '{key}' in {where}{hint}")
        kwargs[key] = _coerce(value, hints[key], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise PplEdgeError(f"invalid {where}: {err}") from err


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-JSON dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """Parse ``--set key=value`` pairs into a dict of strings."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise PplEdgeError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise PplEdgeError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PplEdgeError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise PplEdgeError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def merge(cls: type[T], base: T, updates: dict[str, Any], where: str) -> T:
    """Return ``base`` with ``updates`` applied and validated."""
    data = dataclasses.asdict(base)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in updates:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise PplEdgeError(f"unknown key '{key}' in {where}{hint}")
    data.update(updates)
    return from_dict(cls, data, where)
