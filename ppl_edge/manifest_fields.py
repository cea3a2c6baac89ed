"""Field checks of ``manifest.json``, for :meth:`ppl_edge.manifest.Manifest.from_dict`: types,
finite numbers, bounded sizes, and artifact paths that stay inside the export folder. Every failure
is a one-line :class:`ManifestError` that names the field. Torch-free, standard library only.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from ppl_edge.errors import PplEdgeError

MAX_INPUT_SIDE = 4096  # model input height / width, pixels (checkpoints cap img_size at 1024)
MAX_COUNT = 1 << 16  # keypoints, memory banks / entries / dim and batch: far above any model
MEMORY_FIELDS = ("banks", "entries", "dim")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ManifestError(PplEdgeError):
    """A manifest is missing, unreadable or lacks a field the runtime needs."""


def short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (a message stays one readable line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def get(
    data: dict, dotted: str, kind: type | tuple[type, ...], where: str, lo=None, hi=None
) -> Any:
    """Fetch ``a.b.c`` from nested dicts and check its type; numbers must also be finite and, when
    ``lo`` and ``hi`` are given, in [lo, hi].

    Raises:
        ManifestError: naming the field.
    """
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ManifestError(
                f"{where}: field '{dotted}' is missing; re-export the model with 'ppl-edge convert'"
            )
        node = node[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(node, bool) and bool not in kinds) or not isinstance(node, kind):
        names = " or ".join(k.__name__ for k in kinds)
        raise ManifestError(f"{where}: field '{dotted}' must be {names}, got {short(node)}")
    if isinstance(node, float) and not math.isfinite(node):
        raise ManifestError(f"{where}: field '{dotted}' must be a finite number, got {node}")
    if lo is not None and not lo <= node <= hi:
        raise ManifestError(f"{where}: field '{dotted}' must be in [{lo}, {hi}], got {node}")
    return node


def numbers(data: dict, dotted: str, where: str, count: int, what: str = "") -> tuple[float, ...]:
    """A list of exactly ``count`` finite numbers, as floats; ``what`` adds to the message."""
    values = get(data, dotted, list, where)
    if len(values) != count or not all(map(is_number, values)):
        raise ManifestError(
            f"{where}: field '{dotted}' must be {count} finite numbers{what}, got {short(values)}"
        )
    return tuple(float(v) for v in values)


def edges(data: dict, n: int, where: str) -> tuple[tuple[int, int], ...]:
    """``skeleton.edges``: pairs of integers i < j in 0..n-1."""
    found = get(data, "skeleton.edges", list, where)
    pairs = all(isinstance(e, list) and len(e) == 2 for e in found)
    if not pairs or not all(type(v) is int for e in found for v in e):
        raise ManifestError(f"{where}: skeleton.edges must be [[i, j], ...], got {short(found)}")
    for i, j in found:
        if not 0 <= i < j < n:
            raise ManifestError(
                f"{where}: skeleton edge {[i, j]} is outside 0..{n - 1} or not i < j"
            )
    return tuple((i, j) for i, j in found)


def keypoints(data: dict, where: str) -> tuple[int, tuple[str, ...]]:
    """N (``keypoints.count``) and its names (default kp00, kp01, ...)."""
    n = get(data, "keypoints.count", int, where, 1, MAX_COUNT)
    names = data["keypoints"].get("names")
    names = [f"kp{i:02d}" for i in range(n)] if names is None else names
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        raise ManifestError(
            f"{where}: field 'keypoints.names' must be a list of {n} strings, got {short(names)}"
        )
    coords = data["keypoints"].get("coords", "xy_norm")
    if len(names) != n or coords != "xy_norm":
        raise ManifestError(
            f"{where}: the manifest names {len(names)} keypoints; keypoints need {n} "
            f"names and coords 'xy_norm', got {coords!r}"
        )
    return n, tuple(names)


def batch(data: dict, where: str) -> tuple[bool, int]:
    """(dynamic, max) of the optional ``batch`` section (absent: static, batch 1)."""
    if data.get("batch") is None:
        return False, 1
    section = get(data, "batch", dict, where)
    dynamic = section.get("dynamic", False)
    if not isinstance(dynamic, bool):
        raise ManifestError(
            f"{where}: field 'batch.dynamic' must be true or false, got {dynamic!r}"
        )
    top = get(data, "batch.max", int, where, 1, MAX_COUNT) if "max" in section else 1
    return dynamic, top


def inside_folder(name: str) -> bool:
    """Whether ``name`` is a relative path that stays in its folder, read as a POSIX and as a
    Windows path alike: not empty, no root or drive, no '..' component, no NUL byte."""
    paths = (PurePosixPath(name), PureWindowsPath(name))
    return "\0" not in name and all(p.parts and not p.anchor and ".." not in p.parts for p in paths)


def artifacts(data: dict, where: str) -> dict[str, dict[str, str]]:
    """``artifacts``: key -> {"file": a path inside the export folder, "sha256": 64 hex digits}.

    A file that leads out of the folder is refused here, before anything is read or hashed, so no
    message can tell anything about a file outside the export.
    """
    found = get(data, "artifacts", dict, where)
    for key, entry in found.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ManifestError(
                f"{where}: artifacts.{key} must be {{'file': ..., 'sha256': ...}}, "
                f"got {short(entry)}"
            )
        if not inside_folder(entry["file"]):
            raise ManifestError(
                f"{where}: artifacts.{key}.file {short(entry['file'])} is not inside the export "
                "folder; artifact files are relative paths without '..'"
            )
        sha = entry.get("sha256")
        if sha not in (None, "") and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            raise ManifestError(
                f"{where}: artifacts.{key}.sha256 must be 64 hex digits, got {short(sha)}"
            )
    return found
