"""Named joints: the joint map of a model, one contract for the exporter, the manifest and the
runtime (docs/contracts.md, "Export artifacts").

``joints = [keypoints_flat (2N), 1] @ M``, M of shape (2N + 1, 2J) with columns x0 y0 x1 y1 ...,
everything in the model's [-1, 1] crop coordinates. ``ppl-edge name`` fits M from labels; a
template prior's M is the identity (keypoint k is joint k). The manifest's ``joints`` section:

    {"count": J, "names": [...], "edges": [[i, j], ...], "swap_pairs": [[i, j], ...],
     "coords": "xy_norm", "source": "map" | "template", "map": [[...2J values], ...2N + 1 rows]}

Torch-free (NumPy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

SOURCES = ("map", "template")
_SIDES = (
    (r"^left_(.+)$", "right_{}"), (r"^right_(.+)$", "left_{}"),
    (r"^l_(.+)$", "r_{}"), (r"^r_(.+)$", "l_{}"),
    (r"^left(.+)$", "right{}"), (r"^right(.+)$", "left{}"),
)  # fmt: skip


def swap_pairs_from_names(names: tuple[str, ...] | list[str]) -> tuple[tuple[int, int], ...]:
    """(i, j), i < j, for every pair of names that differ only by a left / right prefix
    (``l_``/``r_``, ``left_``/``right_``, ``left``/``right``; case-insensitive)."""
    index = {n.lower(): i for i, n in enumerate(names)}
    pairs = set()
    for i, name in enumerate(names):
        for pattern, other in _SIDES:
            m = re.match(pattern, name.lower())
            if m and other.format(m.group(1)) in index:
                j = index[other.format(m.group(1))]
                pairs.add((min(i, j), max(i, j)))
    return tuple(sorted(pairs))


def swap_permutation(count: int, pairs) -> list[int]:
    """Index k -> the index of its mirror joint among ``count`` joints (itself when it has none),
    from left / right ``pairs`` (i, j)."""
    perm = list(range(count))
    for i, j in pairs:
        perm[i], perm[j] = j, i
    return perm


@dataclass(frozen=True)
class NamedJoints:
    """The J named joints of a model with N keypoints.

    Attributes:
        names: J joint names.
        edges: skeleton (i, j) between joints; swap_pairs: left/right pairs (i, j).
        matrix: (2N + 1, 2J) read-only, ``joints = [keypoints_flat, 1] @ matrix``.
        source: "map" (fitted by ``ppl-edge name``) or "template" (a template prior's identity).
    """

    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    swap_pairs: tuple[tuple[int, int], ...]
    matrix: np.ndarray
    source: str = "map"

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, copy=True)
        matrix.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)

    @property
    def count(self) -> int:
        """J."""
        return len(self.names)

    @classmethod
    def identity(cls, names, edges, swap_pairs) -> NamedJoints:
        """Joint k = keypoint k (a template prior): M = [I; 0], J = N."""
        n = len(names)
        matrix = np.concatenate([np.eye(2 * n), np.zeros((1, 2 * n))]).astype(np.float32)
        return cls(tuple(names), tuple(edges), tuple(swap_pairs), matrix, "template")

    def apply(self, keypoints: np.ndarray) -> np.ndarray:
        """(..., N, 2) keypoints in [-1, 1] -> (..., J, 2) joints in [-1, 1], float64."""
        x = np.asarray(keypoints, np.float64)
        lead = x.shape[:-2]
        flat = x.reshape(*lead, -1)
        matrix = self.matrix.astype(np.float64)
        return (flat @ matrix[:-1] + matrix[-1]).reshape(*lead, -1, 2)

    def section(self) -> dict[str, Any]:
        """The manifest's ``joints`` section (the map's values exactly, e.g. float32 ones)."""
        return {
            "count": self.count,
            "names": list(self.names),
            "edges": [[int(i), int(j)] for i, j in self.edges],
            "swap_pairs": [[int(i), int(j)] for i, j in self.swap_pairs],
            "coords": "xy_norm",
            "source": self.source,
            "map": [[float(v) for v in row] for row in self.matrix],
        }

    def check(self, num_keypoints: int) -> NamedJoints:
        """Itself, if its map fits ``num_keypoints`` and its pairs its joints.

        Raises:
            ValueError: naming the first problem, in one line.
        """
        want = (2 * num_keypoints + 1, 2 * self.count)
        if self.matrix.shape != want:
            raise ValueError(
                f"the joint map is {self.matrix.shape}, expected {want} for {num_keypoints} "
                f"keypoints and {self.count} joint names"
            )
        if not np.isfinite(self.matrix).all():
            raise ValueError("the joint map holds a non-finite value")
        bad = [
            e for e in self.edges + self.swap_pairs if e[0] == e[1] or not _within(e, self.count)
        ]
        if bad:
            raise ValueError(
                f"joint pairs {[list(e) for e in bad[:3]]} are not two of 0..{self.count - 1}"
            )
        if self.source not in SOURCES:
            raise ValueError(f"joints source {self.source!r} is not one of {SOURCES}")
        return self


def _within(pair: tuple[int, int], count: int) -> bool:
    return all(0 <= v < count for v in pair)


def _pairs(section: dict, key: str) -> tuple[tuple[int, int], ...]:
    value = section.get(key, [])
    try:
        pairs = tuple((int(i), int(j)) for i, j in value)
    except (TypeError, ValueError):
        raise ValueError(f"joints.{key} must be [[i, j], ...], got {value!r}"[:200]) from None
    if any(isinstance(v, bool) for p in value for v in p):
        raise ValueError(f"joints.{key} must hold integers")
    return pairs


def parse_section(section: Any, num_keypoints: int) -> NamedJoints:
    """Validate a manifest's ``joints`` section.

    Raises:
        ValueError: naming the first problem, in one line.
    """
    if not isinstance(section, dict):
        raise ValueError(f"joints must be an object, got {type(section).__name__}")
    names, count = section.get("names"), section.get("count")
    if not isinstance(names, list) or not names or not all(isinstance(s, str) for s in names):
        raise ValueError("joints.names must be a non-empty list of strings")
    if isinstance(count, bool) or not isinstance(count, int) or count != len(names):
        raise ValueError(
            f"joints.names lists {len(names)} names but joints.count is {count!r}: they must "
            "match the graph's 'joints' output"
        )
    if section.get("coords", "xy_norm") != "xy_norm":
        raise ValueError(f"joints.coords must be 'xy_norm', got {section.get('coords')!r}")
    rows = section.get("map")
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("joints.map must be a list of rows of numbers") from None
    if matrix.ndim != 2 or any(isinstance(v, bool) for row in rows for v in row):
        raise ValueError("joints.map must be a list of rows of numbers")
    joints = NamedJoints(
        tuple(names),
        _pairs(section, "edges"),
        _pairs(section, "swap_pairs"),
        matrix,
        str(section.get("source", "map")),
    )
    return joints.check(num_keypoints)
