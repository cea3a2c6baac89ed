"""Template priors: human-made keypoint priors with named joints (seed 002, transforming shape
templates), selected with ``--set model.prior=template:<name>``.

Each template is a small JSON file beside this module: ``joints`` (name -> [x, y] in [-1, 1] of the
crop, x right, y down, in the order of the keypoints), ``edges`` (pairs of names) and a
description; left/right pairs follow from the names (``l_x`` / ``r_x``). With a template prior,
keypoint k *is* joint k: the names need no labels, and flipping an image swaps the pairs.
Torch-free.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.named_joints import swap_pairs_from_names, swap_permutation

FOLDER = Path(__file__).resolve().parent
PREFIX = "template:"


@dataclass(frozen=True)
class Template:
    """A template prior: names (N,), points (N, 2) in [-1, 1], edges and left/right pairs."""

    name: str
    names: tuple[str, ...]
    points: tuple[tuple[float, float], ...]
    edges: tuple[tuple[int, int], ...]
    swap_pairs: tuple[tuple[int, int], ...]

    def swap_permutation(self) -> list[int]:
        """Index k -> the index of its mirror joint (itself when it has none)."""
        return swap_permutation(len(self.names), self.swap_pairs)


def available() -> list[str]:
    """Names of the shipped templates."""
    return sorted(p.stem for p in FOLDER.glob("*.json"))


@functools.cache
def load_template(name: str) -> Template:
    """The template ``name`` (a shipped one, see :func:`available`).

    Raises:
        PplEdgeError: unknown name or a malformed file.
    """
    check_choice(name, available(), "template")
    path = FOLDER / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(doc["joints"])
        points = tuple((float(x), float(y)) for x, y in doc["joints"].values())
        index = {n: i for i, n in enumerate(names)}
        edges = tuple(sorted((min(index[a], index[b]), max(index[a], index[b]))
                             for a, b in doc["edges"]))  # fmt: skip
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise PplEdgeError(f"template file {path} is malformed: {err}") from None
    if any(not (-1 <= v <= 1) for p in points for v in p):
        raise PplEdgeError(f"template file {path}: every point must lie in [-1, 1]")
    return Template(name, names, points, edges, swap_pairs_from_names(names))


def template_of(prior: str) -> Template | None:
    """The template a ``ModelConfig.prior`` value names, or None for a learned / random prior."""
    if not prior.startswith(PREFIX):
        return None
    return load_template(prior[len(PREFIX) :])
